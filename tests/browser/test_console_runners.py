"""Runner routing in the console (issue 24): the Overview's runners table shows, for each runner
of GET /api/runners, the collectors it takes, its labels, and the vendor collectors it cannot
take because their credentials are not configured where it runs."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import TIMEOUT_MS, api_get, url_of
from tests.support.conditions import eventually


async def test_the_overview_shows_each_runners_collectors_labels_and_missing_credentials(
    live_server: ServerFactory, page: Any
) -> None:
    server = await live_server(runner_labels=("site=hq", "zone=b"))

    async def registered() -> Any:
        runners = [r for r in (await api_get(server, "/api/runners"))["runners"] if not r["stopped_at"]]
        return next((r for r in runners if r["labels"] == ["site=hq", "zone=b"]), None)

    runner = await eventually(registered, timeout=30, what="the runner with its labels")
    # No vendor credentials in the test environment: the runner knows ninja and threatlocker
    # but does not take them.
    assert {"ninja", "threatlocker"} <= set(runner["without_credentials"])
    assert "ninja" not in runner["collectors"]

    await page.goto(url_of(server))
    row = page.locator(f'#runners tr[data-runner-id="{runner["runner_id"]}"]')
    await row.wait_for(timeout=TIMEOUT_MS)
    collectors = row.locator('td[data-label="Collectors"]')
    assert (await collectors.locator(".runner-collectors").text_content() or "") == ", ".join(runner["collectors"])
    missing = await collectors.locator(".without-credentials").text_content() or ""
    for name in runner["without_credentials"]:
        assert name in missing
    assert "credentials" in missing
    assert await row.locator('td[data-label="Labels"]').text_content() == "site=hq, zone=b"
