"""What a key may do comes from GET /api/me (issue 24): the console never probes its rights
with requests that could change something (it used to POST a cancel of bc_00000000 and an
empty webhook, leaving a 400 and a 404 in the browser's console), and a read-only key still
sees no button it cannot use."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import POLL_MS, TIMEOUT_MS, api_post, cancel_if_active, url_of

READER = "console-reader-key-0123456789abcdef"
TRIGGER = "console-trigger-key-0123456789abcd"


def record_requests(page: Any) -> tuple[list[str], list[str]]:
    """Every request the page sends ("METHOD path") and every console message of an error."""
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url.split('/', 3)[-1]}"))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return requests, errors


async def test_rights_are_read_from_api_me_and_nothing_is_probed(live_server: ServerFactory, page: Any) -> None:
    server = await live_server(api_keys=(("read", READER), ("trigger", TRIGGER)))
    created = await api_post(server, "/api/collectors/run", {"collectors": ["slow"]}, key=TRIGGER)
    batch_id = created["batch_id"]
    requests, errors = record_requests(page)
    await page.add_init_script(f"sessionStorage.setItem('collector-hub-api-key', {READER!r})")
    await page.goto(url_of(server))
    await page.locator(f'#active-batches [data-batch-id="{batch_id}"]').wait_for(timeout=TIMEOUT_MS)
    await page.wait_for_function(
        "() => /^[0-9]+$/.test(document.querySelector('#running-count')?.textContent)", polling=POLL_MS
    )
    await page.wait_for_load_state("networkidle")
    assert await page.locator("#start-form, .cancel-batch, .cancel-job").count() == 0
    await page.goto(url_of(server, f"/runs/{batch_id}"))
    await page.wait_for_selector("#run-batch .job-row", timeout=TIMEOUT_MS)
    await page.wait_for_load_state("networkidle")
    assert await page.locator(".cancel-batch, .cancel-job, .rerun-job").count() == 0
    await page.goto(url_of(server, "/schedules"))
    await page.wait_for_selector("#schedules tbody tr", timeout=TIMEOUT_MS)
    await page.wait_for_load_state("networkidle")
    assert not await page.is_visible("#new-schedule")

    changes = [r for r in requests if not r.startswith("GET ")]
    assert changes == [], f"the console sent requests that could change something: {changes}"
    assert errors == [], f"errors in the browser's console: {errors}"
    assert "GET api/me" in requests

    # With a trigger key the same page offers what that key may do.
    await page.add_init_script(f"sessionStorage.setItem('collector-hub-api-key', {TRIGGER!r})")
    await page.goto(url_of(server))
    await page.locator(f'#active-batches [data-batch-id="{batch_id}"] .cancel-batch').wait_for(timeout=TIMEOUT_MS)
    await page.wait_for_selector("#start-form", timeout=TIMEOUT_MS)
    assert [r for r in requests if not r.startswith("GET ")] == []
    await cancel_if_active(server, batch_id, key=TRIGGER)


async def test_a_refusal_of_a_request_sent_before_the_key_was_saved_does_not_ask_again(
    live_server: ServerFactory, page: Any
) -> None:
    """A request sent without a key and refused after the operator saved one must not open the
    prompt again: it did, and the prompt then covered the page the key had just opened (a browser
    test failed on a fresh clone with the dialog intercepting its click)."""
    server = await live_server(api_keys=(("read", READER),))
    held: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def hold_the_first_without_a_key(route: Any) -> None:
        if not held.done() and "x-api-key" not in route.request.headers:
            held.set_result(route)
        else:
            await route.continue_()

    # Which fetches of the page have settled (the console handles a refusal as its fetch settles).
    await page.add_init_script(
        "window.settled = []; const sent = window.fetch;"
        "window.fetch = (url, init) => sent(url, init).finally(() => window.settled.push(String(url)));"
    )
    await page.route("**/api/me", hold_the_first_without_a_key)
    await page.goto(url_of(server))
    await page.locator("#key-dialog[open]").wait_for(timeout=TIMEOUT_MS)  # the other requests' refusals
    route = await asyncio.wait_for(held, TIMEOUT_MS / 1000)
    await page.fill("#api-key", READER)
    await page.click("#save-key")
    await page.wait_for_function(
        "() => /^[0-9]+$/.test(document.querySelector('#running-count')?.textContent)", polling=POLL_MS
    )
    async with page.expect_response(lambda resp: resp.request is route.request) as answer:
        await route.continue_()
    assert (await answer.value).status == 401
    await page.wait_for_function(
        "() => window.settled.filter(url => url.endsWith('/api/me')).length >= 2", polling=POLL_MS
    )
    assert not await page.locator("#key-dialog").evaluate("dialog => dialog.open")
