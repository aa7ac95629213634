"""Collector health in the console (issue 24): the Overview's collectors table and the
Collector page show each collector's state from GET /api/collectors/health (healthy, failing,
stale), and the Collector page its last success, how long ago, and its failed runs in a row."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.browser.conftest import PROGRAMS, ServerFactory
from tests.browser.console_helpers import TIMEOUT_MS, api_get, api_post, url_of
from tests.support.conditions import eventually


def collectors_file(path: Path) -> Path:
    python = sys.executable.replace("\\", "\\\\")
    path.write_text(
        f"""
[collectors.demo]
command = ["{python}", "-m", "collectors.demo"]
env = {{ DEMO_PAGES = "2", DEMO_PAGE_SECONDS = "0.1" }}

[collectors.failing]
command = ["{python}", "{PROGRAMS / "vendor_refuses.py"}"]
job_name = "failing-collector"

[collectors.idle]
command = ["{python}", "-c", "pass"]
stale_after = "1s"
"""
    )
    return path


async def test_overview_and_collector_page_show_each_collectors_health(
    live_server: ServerFactory, page: Any, tmp_path: Path
) -> None:
    server = await live_server(collectors_file=collectors_file(tmp_path / "collectors.toml"))
    await api_post(server, "/api/collectors/run", {"collectors": ["demo"]})
    await api_post(server, "/api/collectors/run", {"collectors": ["failing"]})
    expected = {"demo": "healthy", "failing": "failing", "idle": "stale"}

    async def states_reached() -> bool:
        body = await api_get(server, "/api/collectors/health")
        states = {entry["collector"]: entry["state"] for entry in body["collectors"]}
        demo = next(entry for entry in body["collectors"] if entry["collector"] == "demo")
        return all(states[name] == state for name, state in expected.items()) and demo["last_success_at"] is not None

    await eventually(states_reached, timeout=30, what=f"health {expected}")

    await page.goto(url_of(server))
    for name, state in expected.items():
        badge = page.locator(f'#collectors tr[data-collector="{name}"] td[data-label="Health"] .health')
        await badge.and_(page.locator(f'[data-health="{state}"]')).wait_for(timeout=TIMEOUT_MS)
        assert await badge.text_content() == state
    failing = page.locator('#collectors tr[data-collector="failing"] td[data-label="Health"]')
    assert "1 failed run in a row" in (await failing.text_content() or "")
    idle = page.locator('#collectors tr[data-collector="idle"]')
    assert "never succeeded" in (await idle.locator('td[data-label="Health"]').text_content() or "")
    assert "No runs yet" in (await idle.text_content() or "")

    # The Collector page: the state, the last success and its age, the failures in a row.
    await page.goto(url_of(server, "/collectors/failing"))
    await page.locator('#health-state .health[data-health="failing"]').wait_for(timeout=TIMEOUT_MS)
    assert (await page.text_content("#consecutive-failures") or "").startswith("1 ")
    assert await page.text_content("#last-success") == "never"
    await page.goto(url_of(server, "/collectors/demo"))
    await page.locator('#health-state .health[data-health="healthy"]').wait_for(timeout=TIMEOUT_MS)
    success = page.locator("#last-success time")
    assert await success.get_attribute("title")  # the exact UTC time on hover
    assert (await success.text_content() or "").endswith(("ago", "just now"))
    assert (await page.text_content("#consecutive-failures") or "").startswith("0 ")
