"""The Inventory view over rows written the way the collectors write them: counts per source,
the coverage gap with its link, and a device search."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import POLL_MS, TIMEOUT_MS, url_of


async def test_inventory_counts_coverage_and_search(live_server: ServerFactory, page: Any, filled: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server, "/inventory"))
    # ninja keeps WS-001..WS-011 (WS-012 removed), threatlocker WS-005..WS-015.
    await (
        page.locator('#inventory-sources [data-source="ninja"] .device-count')
        .filter(has_text="11")
        .wait_for(timeout=TIMEOUT_MS)
    )
    assert await page.text_content('#inventory-sources [data-source="threatlocker"] .device-count') == "11"
    gap = page.locator('#coverage li[data-source="ninja"][data-missing-from="threatlocker"] a')
    assert (await gap.text_content() or "").startswith("4 ninja hosts")
    await gap.click()
    await page.wait_for_url("**/inventory?source=ninja&missing_from=threatlocker")
    await page.wait_for_function(
        "() => document.querySelectorAll('#devices tbody tr[data-device-id]').length === 4", polling=POLL_MS
    )
    # A search by name, in the address.
    await page.goto(url_of(server, "/inventory"))
    await page.fill("#device-q", "WS-007")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/inventory?q=WS-007")
    await page.wait_for_function(
        "() => document.querySelectorAll('#devices tbody tr[data-device-id]').length === 2", polling=POLL_MS
    )
    sources = await page.eval_on_selector_all("#devices tbody tr", "rows => rows.map(r => r.dataset.source).sort()")
    assert sources == ["ninja", "threatlocker"]
