"""Every view at phone and desktop widths, light and dark: no horizontal scroll, screenshots in
test-output/ (console-<view>-<width>[-dark].png), and an axe-core scan with no serious or
critical violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import (
    PHONE_AND_DESKTOP,
    TIMEOUT_MS,
    api_get,
    api_post,
    cancel_if_active,
    fits_and_passes_axe,
    open_in_page,
    page_at,
    url_of,
    wait_live,
)
from tests.support.conditions import eventually


async def views_with_data(server: Any, schedule_name: str) -> dict[str, str]:
    """A finished run, one in progress and a schedule; the address of each view."""
    done = await api_post(server, "/api/collectors/run", {"collectors": ["demo", "html"]})
    running = await api_post(server, "/api/collectors/run", {"collectors": ["slow"], "priority": "high"})
    schedule = {
        "name": schedule_name,
        "collectors": ["demo", "html"],
        "cron": "30 2 * * *",
        "timezone": "Europe/Paris",
    }
    await api_post(server, "/api/schedules", schedule)
    for batch in (done, running):
        batch_id = batch["batch_id"]

        async def ready(batch_id: str = batch_id) -> bool:
            body = await api_get(server, f"/api/collectors/runs/batch/{batch_id}")
            return body["status"] in ("completed", "running") and (body["progress_percent"] or 0) > 0

        await eventually(ready, timeout=30, what=f"{batch_id} under way")
    return {
        "running": running["batch_id"],
        "overview": "/",
        "runs": "/runs",
        "run": f"/runs/{running['batch_id']}",
        "collector": "/collectors/demo",
        "inventory": "/inventory",
        "schedules": "/schedules",
    }


# One test per color scheme and width: six views scanned each. One test of all 24 came near its
# 120 s limit on a loaded machine and passed it once; one per scheme (12 views) still took 100 s
# under load.
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("width", "height"), PHONE_AND_DESKTOP, ids=[f"{w}px" for w, _ in PHONE_AND_DESKTOP])
async def test_every_view_fits_a_phone_and_passes_axe(
    live_server: ServerFactory,
    browser: Any,
    screenshot_dir: Path,
    filled: Any,
    scheme: str,
    width: int,
    height: int,
) -> None:
    server = await live_server()
    views = await views_with_data(server, f"nightly-inventory-{scheme}-{width}")  # the module's tests share a database
    running = views.pop("running")
    problems: list[str] = []
    async with page_at(browser, width, height, scheme) as (page, errors):
        for name, path in views.items():
            # The first view is loaded by its address, the others opened from it as a link does
            # (each loaded by its own address in test_console_shell.py's test of every view
            # without a key).
            if path == "/":
                await page.goto(url_of(server, path))
            else:
                await open_in_page(page, path)
            assert page.url == url_of(server, path)
            await wait_live(page, "websocket")
            await page.wait_for_selector("main h1", timeout=TIMEOUT_MS)
            problems += await fits_and_passes_axe(page, screenshot_dir, name, scheme)
    assert errors == []
    # The slow run takes a minute: on a loaded machine it may have ended by now.
    await cancel_if_active(server, running)
    assert problems == []
