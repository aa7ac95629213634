"""The console on each transport: a run started from the Overview, live per-job bars, followed
into its Run view, then found in Runs and on its collector's page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import (
    TIMEOUT_MS,
    TRANSPORTS,
    api_get,
    force_transport,
    start_from_overview,
    url_of,
    wait_live,
)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_view_is_live_on_each_transport(live_server: ServerFactory, page: Any, transport: str) -> None:
    server = await live_server()
    await force_transport(page, transport)
    await page.goto(url_of(server))
    await wait_live(page, transport)
    # Polling reads the Overview's state every 5-10 s, and the demo's run takes 5: a run of
    # those alone can fall between two polls, so the polling page gets one that stays half-way.
    collectors = ("demo", "chatty", "paced") if transport == "poll" else ("demo", "chatty")
    batch_id = await start_from_overview(page, *collectors)
    card = page.locator(f'#active-batches [data-batch-id="{batch_id}"]')
    # A job bar moves between 0 and 100 while the run goes on, pushed to the Overview.
    moving = card.locator('.job-row [role=progressbar]:not([aria-valuenow="0"]):not([aria-valuenow="100"])')
    await moving.first.wait_for(timeout=TIMEOUT_MS)
    # Follow it into its Run view (a link: the address changes, no reload).
    await card.locator(".batch-link").click()
    await page.wait_for_url(f"**/runs/{batch_id}")
    await page.wait_for_selector('main[data-status="completed"]', timeout=TIMEOUT_MS)
    batch = await api_get(server, f"/api/collectors/runs/batch/{batch_id}")
    assert len(batch["collectors"]) == len(collectors)
    for job in batch["collectors"]:
        row = page.locator(f'#run-batch [data-job-id="{job["job_id"]}"]')
        assert await row.locator(".status").get_attribute("data-status") == job["status"]
        assert await row.locator("[role=progressbar]").get_attribute("aria-valuenow") == "100"
        assert await row.locator(".job-message").text_content() == job["message"]
    await wait_live(page, transport)  # the console's own subscription is still on this transport
    # Back to the Overview: the run is listed as finished there, and the demo collector's row
    # shows it.
    await page.go_back()
    await page.wait_for_url(url_of(server, "/"))
    await page.wait_for_selector(
        '#collectors tr[data-collector="demo"] .status[data-status="completed"]', timeout=TIMEOUT_MS
    )
    # Runs lists it; its collector's page too; and its log was read.
    await page.click('#collectors a[href="/collectors/demo"]')
    await page.wait_for_url("**/collectors/demo")
    await page.wait_for_selector(f'main a[href="/runs/{batch_id}"]', timeout=TIMEOUT_MS)
    assert await page.text_content("#success-rate") == "100%"
    await page.click('nav a[href="/runs"]')
    await page.wait_for_selector(f'#runs a[href="/runs/{batch_id}"]', timeout=TIMEOUT_MS)
    await page.click(f'#runs a[href="/runs/{batch_id}"]')
    chatty = next(j["job_id"] for j in batch["collectors"] if j["collector"] == "chatty")
    panel = page.locator(f'.log-panel[data-job-id="{chatty}"]')
    await panel.locator("summary").click()
    await panel.locator(".line").filter(has_text="line 120").wait_for(timeout=TIMEOUT_MS)
    await panel.locator(".line.error").filter(has_text="Traceback").wait_for(timeout=TIMEOUT_MS)
