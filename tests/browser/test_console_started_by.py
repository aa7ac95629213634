"""Who started a run (issue 25): the Runs view's "Started by" column and the Run view say it
from each batch's ``started_by``: the stored API key's name (or "by hand" when there is no
name to give), the schedule's name, or a link to the batch a re-run re-ran."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import TIMEOUT_MS, api_get, api_post, url_of
from tests.support.conditions import eventually
from tests.support.keys import stored_key

SETTINGS_KEY = "console-settings-admin-key-0123456789"


async def test_runs_and_run_view_say_who_started_each_run(
    live_server: ServerFactory, page: Any, database_url: str
) -> None:
    key = stored_key(database_url, "ops-laptop")
    server = await live_server(api_keys=(("admin", SETTINGS_KEY),))
    by_key = (await api_post(server, "/api/collectors/run", {"collectors": ["failing"]}, key=key))["batch_id"]
    unnamed = (await api_post(server, "/api/collectors/run", {"collectors": ["failing"]}, key=SETTINGS_KEY))["batch_id"]
    schedule = {"name": "nightly", "collectors": ["failing"], "cron": "0 3 * * *", "timezone": "UTC"}
    created = await api_post(server, "/api/schedules", schedule, key=key)
    scheduled = (await api_post(server, f"/api/schedules/{created['schedule_id']}/trigger", {}, key=key))["batch_id"]

    async def failed() -> bool:
        body = await api_get(server, f"/api/collectors/runs/batch/{by_key}", key=key)
        return bool(body["status"] == "failed")

    await eventually(failed, timeout=30, what=f"{by_key} failed")
    rerun_path = f"/api/collectors/runs/batch/{by_key}/rerun"
    rerun = (await api_post(server, rerun_path, {"only": "failed"}, key=key))["batch_id"]

    await page.add_init_script(f"sessionStorage.setItem('collector-hub-api-key', {key!r})")
    await page.goto(url_of(server, "/runs"))
    cell = "#runs tr[data-batch-id='{}'] td[data-label='Started by']"
    await page.wait_for_selector(cell.format(rerun), timeout=TIMEOUT_MS)
    assert await page.text_content(cell.format(by_key)) == "ops-laptop"
    assert await page.text_content(cell.format(unnamed)) == "by hand"
    assert await page.text_content(cell.format(scheduled)) == "schedule nightly"
    assert await page.get_attribute(f"{cell.format(scheduled)} a", "href") == "/schedules"
    assert await page.text_content(cell.format(rerun)) == f"re-run of {by_key}"
    assert await page.get_attribute(f"{cell.format(rerun)} a", "href") == f"/runs/{by_key}"

    # The Run view: "Started by schedule nightly, 48 s ago", the time on hover.
    await page.goto(url_of(server, f"/runs/{scheduled}"))
    said = page.locator("#run-facts .started-by")
    await said.wait_for(timeout=TIMEOUT_MS)
    text = await said.text_content() or ""
    assert re.fullmatch(r"schedule nightly, (just now|\d+ s ago|\d+ min ago)", text), text
    assert await said.locator("time").get_attribute("title")
    await page.goto(url_of(server, f"/runs/{by_key}"))
    await page.locator("#run-facts .started-by").filter(has_text="ops-laptop").wait_for(timeout=TIMEOUT_MS)
