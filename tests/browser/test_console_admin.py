"""The admin pages (issue 24): /audit (GET /api/audit, filters and page in the address) and
/webhooks (the receivers, and a test event sent to one with what became of it). Both are in
the nav for admin keys only; both fit a phone, work from the keyboard and pass axe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import (
    PHONE_AND_DESKTOP,
    POLL_MS,
    TIMEOUT_MS,
    api_get,
    api_post,
    fits_and_passes_axe,
    open_in_page,
    page_at,
    url_of,
    wait_live,
)
from tests.support.keys import stored_key
from tests.support.webhook_receivers import Receiver
from tests.support.webhooks import FAST

READER = "console-reader-key-0123456789abcdef"


async def use_key(page: Any, key: str) -> None:
    await page.add_init_script(f"sessionStorage.setItem('collector-hub-api-key', {key!r})")


async def patch(server: Any, path: str, body: Any, key: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.patch(url_of(server, path), json=body, headers={"X-API-Key": key}) as resp,
    ):
        assert resp.status == 200, await resp.text()


@pytest_asyncio.fixture(loop_scope="session")
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    """Two receivers on loopback: one answers 200, the other 500."""
    good, bad = Receiver(), Receiver()
    bad.answer = lambda _: web.Response(status=500, text="down for maintenance")
    for receiver in (good, bad):
        receiver.server = TestServer(receiver.app())
        await receiver.server.start_server()
    yield good, bad
    for receiver in (good, bad):
        assert receiver.server is not None
        await receiver.server.close()


async def test_the_audit_trail_is_filtered_and_paged_from_the_address(
    live_server: ServerFactory, page: Any, database_url: str
) -> None:
    admin = stored_key(database_url, "ops-admin", "admin")
    server = await live_server(run_collectors=False, api_keys=(("read", READER),))
    schedule = {"name": "audited", "collectors": ["demo"], "cron": "0 3 * * *", "timezone": "UTC"}
    created = await api_post(server, "/api/schedules", schedule, key=admin)
    for enabled in [False, True] * 28:  # 56 changes: more than a page
        await patch(server, f"/api/schedules/{created['schedule_id']}", {"enabled": enabled}, admin)
    batch = await api_post(server, "/api/collectors/run", {"collectors": ["demo"]}, key=admin)
    async with aiohttp.ClientSession() as http:  # refused: a read key may not start a run
        run = {"collectors": ["demo"]}
        async with http.post(url_of(server, "/api/collectors/run"), json=run, headers={"X-API-Key": READER}) as resp:
            assert resp.status == 403
    await api_post(server, f"/api/collectors/runs/batch/{batch['batch_id']}/cancel", None, key=admin)

    await use_key(page, admin)
    await page.goto(url_of(server))
    await page.click('nav a[href="/audit"]')
    await page.wait_for_url("**/audit")
    rows = page.locator("#audit tbody tr[data-audit-id]")
    await rows.first.wait_for(timeout=TIMEOUT_MS)
    newest = rows.first
    assert await newest.locator('td[data-label="Action"]').text_content() == "batch.cancel"
    assert "ops-admin" in (await newest.locator('td[data-label="Actor"]').text_content() or "")
    assert await newest.locator(f'td[data-label="Targets"] a[href="/runs/{batch["batch_id"]}"]').count() == 1
    refused = rows.nth(1)
    assert await refused.locator('td[data-label="Action"]').text_content() == "run.trigger"
    assert "refused" in (await refused.locator('td[data-label="Outcome"]').text_content() or "")

    # Filters go into the address, under the API's names; back and forward walk through them.
    await page.fill("#audit-action", "schedule.")
    await page.fill("#audit-actor", "ops-admin")
    await page.press("#audit-actor", "Enter")  # from the keyboard
    await page.wait_for_url("**/audit?actor=ops-admin&action=schedule.")
    await page.wait_for_function(
        "() => document.querySelectorAll('#audit tbody tr').length === 50 && [...document.querySelectorAll("
        "'#audit tbody td[data-label=Action]')].every(td => td.textContent.startsWith('schedule.'))",
        polling=POLL_MS,
    )
    first = await page.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => r.dataset.auditId)")
    await page.focus("#audit-older")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/audit?actor=ops-admin&action=schedule.&cursor=*")
    await page.wait_for_function(
        "() => document.querySelectorAll('#audit tbody tr').length === 7", polling=POLL_MS
    )  # 57 in all
    second = await page.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => r.dataset.auditId)")
    assert not set(first) & set(second)
    assert min(map(int, first)) > max(map(int, second))  # newest first
    assert "schedule.create" in (await page.text_content("#audit tbody tr:last-child") or "")
    assert await page.locator("#audit-older").count() == 0
    await page.go_back()
    await page.wait_for_url("**/audit?actor=ops-admin&action=schedule.")
    await page.wait_for_function("() => document.querySelectorAll('#audit tbody tr').length === 50", polling=POLL_MS)
    # A time range with nothing in it.
    await page.goto(url_of(server, "/audit?since=2001-01-01T00:00:00&until=2001-01-02T00:00:00"))
    await page.locator("#audit td").filter(has_text="No entry matches").wait_for(timeout=TIMEOUT_MS)
    assert await page.input_value("#audit-since") == "2001-01-01T00:00"  # the form shows the range


async def test_admin_pages_are_in_the_nav_for_admins_only(
    live_server: ServerFactory, page: Any, database_url: str
) -> None:
    admin = stored_key(database_url, "nav-admin", "admin")
    server = await live_server(api_keys=(("read", READER),))
    await use_key(page, READER)
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    await page.wait_for_load_state("networkidle")
    assert not await page.is_visible('nav a[href="/audit"]')
    assert not await page.is_visible('nav a[href="/webhooks"]')
    # Opened by its address anyway: the page says what it needs, not the API's words.
    await page.goto(url_of(server, "/audit"))
    await page.locator("#audit td").filter(has_text="Only an admin key may see").wait_for(timeout=TIMEOUT_MS)
    await page.goto(url_of(server, "/webhooks"))
    await page.locator("#webhooks td").filter(has_text="Only an admin key may see").wait_for(timeout=TIMEOUT_MS)
    # Changing to an admin key shows them, without a reload.
    await page.click("#key-button")
    await page.fill("#api-key", admin)
    await page.click("#save-key")
    await page.locator('nav a[href="/audit"]').wait_for(timeout=TIMEOUT_MS)
    assert await page.is_visible('nav a[href="/webhooks"]')


async def test_a_test_event_is_sent_from_the_webhooks_page_and_its_outcome_shown(
    live_server: ServerFactory, page: Any, receivers: tuple[Receiver, Receiver], database_url: str
) -> None:
    good, bad = receivers
    admin = stored_key(database_url, "hook-admin", "admin")
    server = await live_server(**FAST)
    hook = {"url": good.url, "events": ["batch.failed", "job.failed"]}
    ok_hook = await api_post(server, "/api/webhooks", hook, key=admin)
    down = await api_post(server, "/api/webhooks", {"url": bad.url, "collectors": ["demo"]}, key=admin)
    off = await api_post(server, "/api/webhooks", {"url": f"{good.url}/off", "description": "paused"}, key=admin)
    await patch(server, f"/api/webhooks/{off['id']}", {"enabled": False}, admin)

    await use_key(page, admin)
    await page.goto(url_of(server))
    await page.click('nav a[href="/webhooks"]')
    await page.wait_for_url("**/webhooks")
    row = page.locator(f'#webhooks tr[data-webhook-id="{ok_hook["id"]}"]')
    await row.wait_for(timeout=TIMEOUT_MS)
    assert await row.locator('td[data-label="URL"]').text_content() == good.url
    assert await row.locator('td[data-label="Events"]').text_content() == "batch.failed, job.failed"
    assert await row.locator('td[data-label="Collectors"]').text_content() == "all"
    assert "enabled" in (await row.locator('td[data-label="State"]').text_content() or "")
    down_row = page.locator(f'#webhooks tr[data-webhook-id="{down["id"]}"]')
    assert await down_row.locator('td[data-label="Collectors"]').text_content() == "demo"
    off_row = page.locator(f'#webhooks tr[data-webhook-id="{off["id"]}"]')
    assert "disabled" in (await off_row.locator('td[data-label="State"]').text_content() or "")
    assert await off_row.locator(".send-test").count() == 0

    await row.locator(".send-test").click()
    outcome = row.locator('.test-outcome[data-state="delivered"]')
    await outcome.wait_for(timeout=TIMEOUT_MS)
    assert "the receiver answered 200" in (await outcome.text_content() or "")
    [received] = good.received
    assert b'"test":true' in received.body.replace(b" ", b"")

    # A receiver that answers 500: retried (three times here), then said to have failed.
    await down_row.locator(".send-test").focus()
    await page.keyboard.press("Enter")
    failed = down_row.locator('.test-outcome[data-state="undelivered"]')
    await failed.wait_for(timeout=TIMEOUT_MS)
    assert "Not delivered after 4 attempts: the receiver answered 500" in (await failed.text_content() or "")
    assert len(bad.received) == 4


# One test per color scheme and width: the four in one test took 104 s on a loaded machine, near
# the 120 s limit.
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("width", "height"), PHONE_AND_DESKTOP, ids=[f"{w}px" for w, _ in PHONE_AND_DESKTOP])
async def test_admin_pages_fit_a_phone_and_pass_axe(
    live_server: ServerFactory,
    browser: Any,
    screenshot_dir: Path,
    receivers: tuple[Receiver, Receiver],
    database_url: str,
    scheme: str,
    width: int,
    height: int,
) -> None:
    actor = f"layout-admin-{scheme}-{width}"
    admin = stored_key(database_url, actor, "admin")
    server = await live_server(**FAST)
    good, _ = receivers
    hook = {"url": f"{good.url}/a-rather-long-path/for-a-narrow-screen", "collectors": ["demo"]}
    await api_post(server, "/api/webhooks", hook, key=admin)  # also an audit entry: succeeded, an id as code
    # And a refused one, with its detail and a run's id as a link: every kind of row the view draws.
    unknown = url_of(server, "/api/collectors/runs/batch/bc_00000000/cancel")
    async with aiohttp.ClientSession() as http, http.post(unknown, headers={"X-API-Key": admin}) as resp:
        assert resp.status == 404
    entries = (await api_get(server, f"/api/audit?actor={actor}", key=admin))["entries"]
    assert {entry["outcome"] for entry in entries} == {"succeeded", "refused"}
    # The audit view filtered to this test's own entries: the module's earlier tests left more
    # than a page (50 rows, 790 elements; axe's colour-contrast check costs by the element: 1.65
    # CPU-s a scan against 0.35 for Webhooks), and which rows showed depended on test order.
    views = {"audit": f"/audit?actor={actor}", "webhooks": "/webhooks"}
    problems: list[str] = []
    async with page_at(browser, width, height, scheme) as (page, errors):
        await use_key(page, admin)
        for name, path in views.items():
            # Webhooks opened from the audit view as a link opens it: 0.25 CPU-s less than a load
            # (console_helpers.open_in_page); loaded by its address in the test of the nav above.
            if name == "audit":
                await page.goto(url_of(server, path))
            else:
                await open_in_page(page, path)
            await page.wait_for_selector(f"#{name} tbody tr td", timeout=TIMEOUT_MS)
            problems += await fits_and_passes_axe(page, screenshot_dir, name, scheme)
    assert errors == []
    assert problems == []
