"""Schedules from the console: a bad cron expression refused by the server with its message
and nothing saved, then a schedule created, paused, resumed and run now."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import TIMEOUT_MS, api_get, url_of


async def test_a_schedule_is_created_checked_paused_resumed_and_run_from_the_page(
    live_server: ServerFactory, page: Any
) -> None:
    server = await live_server()
    await page.goto(url_of(server, "/schedules"))
    await page.click("#new-schedule")
    await page.fill("#schedule-name", "nightly-demo")
    await page.fill("#schedule-cron", "0 25 * * *")  # no 25th hour
    await page.fill("#schedule-timezone", "Europe/Paris")
    await page.check("#schedule-form input[value=demo]")
    await page.click("#schedule-save")
    problem = page.locator("#schedule-error")
    await problem.filter(has_text="hour").wait_for(timeout=TIMEOUT_MS)
    assert await page.get_attribute("#schedule-cron", "aria-invalid") == "true"
    assert (await api_get(server, "/api/schedules"))["schedules"] == []
    await page.fill("#schedule-cron", "30 2 * * *")
    await page.click("#schedule-save")
    row = page.locator('#schedules tr[data-name="nightly-demo"]')
    await row.wait_for(timeout=TIMEOUT_MS)
    [stored] = (await api_get(server, "/api/schedules"))["schedules"]
    assert stored["cron"] == "30 2 * * *" and stored["timezone"] == "Europe/Paris"
    assert stored["collectors"] == ["demo"]
    # Its next fire time is shown (the exact UTC times of the next five on opening it).
    first = stored["next_fire_times"][0]
    assert await row.locator(f'.next-times time[datetime="{first}"]').count() == 1
    await row.locator(".toggle-schedule").click()
    await row.locator("td", has_text="paused").first.wait_for(timeout=TIMEOUT_MS)
    assert (await api_get(server, f"/api/schedules/{stored['schedule_id']}"))["enabled"] is False
    await row.locator(".toggle-schedule").filter(has_text="Resume").click()
    await row.locator(".toggle-schedule").filter(has_text="Pause").wait_for(timeout=TIMEOUT_MS)
    # Run now: the new run's view, which says the schedule started it.
    await row.locator(".run-schedule").click()
    await page.wait_for_url("**/runs/bc_*")
    await page.locator("#run-facts .started-by").filter(has_text="nightly-demo").wait_for(timeout=TIMEOUT_MS)
    await page.wait_for_selector('main[data-status="completed"]', timeout=TIMEOUT_MS)
    # Back on Schedules: the last result is that run.
    await page.go_back()
    await row.locator('.status[data-status="completed"]').wait_for(timeout=TIMEOUT_MS)
