"""Browser tests: Debian's Chromium driven by Playwright against a live server with a runner.

`.ci/run` installs Chromium; without it these tests fail (they are never skipped silently).
Screenshots go under ``test-output/`` at the project root.

One Chromium (and one Playwright driver) per test process, not per test: starting them cost
each test about a second and a half of CPU. Each test gets a browser context of its own, as
isolated as a new browser (cookies, storage, network emulation). Playwright's objects belong to
the event loop that made them, so these tests, their live servers and their pages all run on
the session's loop (pytest-asyncio's ``loop_scope="session"``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from server.app import create_app
from server.settings import Settings
from tests.browser.console_helpers import new_context
from tests.support.live_server import LiveServer
from tests.support.settings import replace_settings

# The browser the tests drive: Debian's chromium-headless-shell, the same Chromium (Blink and V8,
# the same version as the chromium package) built without the browser's own UI, which is what
# Playwright itself runs for headless tests. The full browser keeps pages of its own UI open
# beside each test page, in renderers of their own: each window's omnibox popup
# (chrome://omnibox-popup.top-chrome) drew all the time, about 0.08 CPU-s a second. Turning that
# off by feature name saved 31-42 % of Chromium's CPU on the largest browser modules; the shell
# took a further 19 % off (variances and layout: 68.6 -> 55.6 CPU-s of the browser), and ten
# context-and-page cycles cost 1.87 CPU-s against 6.3-6.6.
CHROMIUM = Path("/usr/bin/chromium-headless-shell")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HTML_MESSAGE = "<img src=x onerror=window.pwned=1><b>bold</b>"
# Half-way for longer than the console's slowest polling interval (10 s): a page that only polls
# sees it between 0 and 100 at least once, however its polls fall.
PACED = "import time\\nprint('@progress 50 Half-way', flush=True)\\ntime.sleep(12)"
# The slow collector: under way (1 %) at once, then a page every six seconds, so it is still
# running at the end of any test that leaves it running, on a loaded machine too (the demo,
# paced for the eye, ended within a minute, sometimes before the test that needed it running).
SLOW_PAGES = (
    "import time\\nfor page in range(1, 101):\\n"
    "    print(f'@progress {page} Processing page {page}/100', flush=True)\\n    time.sleep(6)"
)
PROGRAMS = Path(__file__).resolve().parent.parent / "collector_programs"
OUTPUT_DIR = Path(__file__).resolve().parent.parent.parent / "test-output"


@pytest.fixture
def browser_collectors_file(tmp_path: Path) -> Path:
    """A quick demo (so a run ends in seconds), a slow one to cancel, one that fails, one that
    prints many lines, one that stays half-way for longer than a polling interval, and one whose
    messages are HTML."""
    python = sys.executable.replace("\\", "\\\\")
    path = tmp_path / "collectors.toml"
    path.write_text(
        f"""
[collectors.demo]
command = ["{python}", "-m", "collectors.demo"]
env = {{ DEMO_PAGES = "10", DEMO_PAGE_SECONDS = "0.5" }}

[collectors.slow]
command = ["{python}", "-c", "{SLOW_PAGES}"]
job_name = "slow-collector"

[collectors.failing]
command = ["{python}", "{PROGRAMS / "vendor_refuses.py"}"]
job_name = "failing-collector"

[collectors.chatty]
command = ["{python}", "{PROGRAMS / "log_lines.py"}"]
job_name = "chatty-collector"

[collectors.paced]
command = ["{python}", "-c", "{PACED}"]
job_name = "paced-collector"

[collectors.html]
command = ["{python}", "-c", "import time; print('@progress 50 {HTML_MESSAGE}', flush=True); time.sleep(1.5)"]
job_name = "html-collector"
"""
    )
    return path


ServerFactory = Callable[..., Awaitable[LiveServer]]
SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every browser test runs on the session's event loop, where the browser lives; said here, at
    parametrization, as well as on the item below. pytest-asyncio parametrizes each async test
    with its loop factory (tests/conftest.py's hook) at the loop scope its marker has *now*: with
    the default (function) scope there, the session's loop and everything on it (the one
    Chromium) was torn down and started again after every test, 64 Chromiums a run instead of one
    per worker, about 3 s of CPU each."""
    if inspect.iscoroutinefunction(metafunc.function):
        metafunc.definition.add_marker(SESSION_LOOP, append=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The same on each test item, which pytest-asyncio reads when it runs the test."""
    here = Path(__file__).parent
    for item in items:
        if isinstance(item, pytest.Function) and item.path.parent == here and inspect.iscoroutinefunction(item.obj):
            item.add_marker(SESSION_LOOP, append=False)  # before the plain marker asyncio_mode=auto adds


@pytest_asyncio.fixture(loop_scope="session")
async def live_server(settings: Settings, browser_collectors_file: Path) -> AsyncIterator[ServerFactory]:
    """``await live_server(port=None, **settings changes)``: the app with a runner on a real port,
    served as ``serve`` serves it (tests/support/live_server.py), closed at the end of the test."""
    servers: list[LiveServer] = []

    async def start(port: int | None = None, **changes: Any) -> LiveServer:
        # The runner polls the queue at its default interval (1 s): a NOTIFY wakes it for each
        # job queued and a process's end for each slot freed, so a tenth of a second only cost
        # ten queries a second all through every test (0.02 CPU-s a second of the app and
        # PostgreSQL together).
        defaults = {
            "run_collectors": True,
            "cancel_grace_period": 0.5,
            "collectors_file": browser_collectors_file,
        }
        app_settings = replace_settings(settings, **{**defaults, **changes})
        server = LiveServer(create_app(app_settings), port=port, shutdown_timeout=app_settings.shutdown_timeout)
        await server.start_server()
        servers.append(server)
        return server

    yield start
    while servers:
        await servers.pop().close()


LAUNCHES: list[Any] = []  # every Chromium this test process started (a test holds it to one)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """The test process's one Chromium."""
    if not CHROMIUM.exists():  # noqa: ASYNC240 (one stat, before any I/O worth sparing)
        pytest.fail("Chromium's headless shell is missing: apt-get install chromium-headless-shell (.ci/run does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        LAUNCHES.append(browser)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Any) -> AsyncIterator[Any]:
    """A page in a browser context of its own; the test fails on any uncaught error in it."""
    context = await new_context(browser)
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
