"""Browser tests: Debian's Chromium driven by Playwright against a live server with a runner.

`.ci/run` installs Chromium; without it these tests fail (they are never skipped silently).
Screenshots go under ``test-output/`` at the project root.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.settings import Settings
from tests.support.settings import replace_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HTML_MESSAGE = "<img src=x onerror=window.pwned=1><b>bold</b>"
PROGRAMS = Path(__file__).resolve().parent.parent / "collector_programs"
OUTPUT_DIR = Path(__file__).resolve().parent.parent.parent / "test-output"


@pytest.fixture
def browser_collectors_file(tmp_path: Path) -> Path:
    """A quick demo (so a run ends in seconds), a slow one to cancel, one that fails, one that
    prints many lines, and one whose messages are HTML."""
    python = sys.executable.replace("\\", "\\\\")
    path = tmp_path / "collectors.toml"
    path.write_text(
        f"""
[collectors.demo]
command = ["{python}", "-m", "collectors.demo"]
env = {{ DEMO_PAGES = "10", DEMO_PAGE_SECONDS = "0.5" }}

[collectors.slow]
command = ["{python}", "-m", "collectors.demo"]
env = {{ DEMO_PAGES = "200", DEMO_PAGE_SECONDS = "0.3" }}
job_name = "slow-collector"

[collectors.failing]
command = ["{python}", "{PROGRAMS / "vendor_refuses.py"}"]
job_name = "failing-collector"

[collectors.chatty]
command = ["{python}", "{PROGRAMS / "log_lines.py"}"]
job_name = "chatty-collector"

[collectors.html]
command = ["{python}", "-c", "import time; print('@progress 50 {HTML_MESSAGE}', flush=True); time.sleep(1.5)"]
job_name = "html-collector"
"""
    )
    return path


ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
def live_server(aiohttp_server: Any, settings: Settings, browser_collectors_file: Path) -> ServerFactory:
    async def start(port: int | None = None, **changes: Any) -> TestServer:
        defaults = {
            "run_collectors": True,
            "runner_poll_interval": 0.1,
            "cancel_grace_period": 0.5,
            "collectors_file": browser_collectors_file,
        }
        app = create_app(replace_settings(settings, **{**defaults, **changes}))
        server: TestServer = await aiohttp_server(app, port=port)
        return server

    return start


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 (one stat, before any I/O worth sparing)
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does this)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture
def screenshot_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR
