"""The dashboard in a real browser: start a run, watch it live on each transport, cancel it,
recover from a server restart, and show server text as text."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import HTML_MESSAGE, ServerFactory

TIMEOUT_MS = 30_000


def url_of(server: Any, path: str = "/") -> str:
    return str(server.make_url(path))


async def start_run_from_page(page: Any, *collectors: str) -> str:
    """Tick exactly ``collectors`` and press Start; returns the batch id the page follows."""
    await page.wait_for_selector("input[name=collector]")
    for box in await page.query_selector_all("input[name=collector]"):
        if (await box.get_attribute("value")) in collectors:
            await box.check()
        else:
            await box.uncheck()
    await page.click("#start-button")
    await page.wait_for_selector("#batch-id:not(:empty)", timeout=TIMEOUT_MS)
    return str(await page.text_content("#batch-id"))


async def wait_for_batch_status(page: Any, status: str) -> None:
    await page.wait_for_selector(f'#batch-status[data-status="{status}"]', timeout=TIMEOUT_MS)


async def block_websocket(page: Any) -> None:
    async def refuse(ws: Any) -> None:
        await ws.close(code=1011, reason="blocked by the test")

    await page.route_web_socket("**/api/ws", refuse)


async def block_event_source(page: Any) -> None:
    await page.route("**/events*", lambda route: route.abort())


async def run_demo_to_completion(page: Any, server: Any) -> tuple[str, str]:
    await page.goto(url_of(server))
    batch_id = await start_run_from_page(page, "demo")
    await wait_for_batch_status(page, "completed")
    await page.wait_for_selector('#batch-bar[aria-valuenow="100"]')
    transport = await page.get_attribute("body", "data-transport")
    return batch_id, str(transport)


async def assert_page_matches_api(page: Any, client_get: Any, batch_id: str) -> None:
    batch = await client_get(f"/api/collectors/runs/batch/{batch_id}")
    assert batch["status"] == "completed"
    for job in batch["collectors"]:
        item = page.locator(f'li[data-job-id="{job["job_id"]}"]')
        assert await item.locator(".job-status").get_attribute("data-status") == job["status"]
        assert await item.locator("[role=progressbar]").get_attribute("aria-valuenow") == "100"
        assert await item.locator(".job-message").text_content() == job["message"]


def api_getter(server: Any) -> Any:
    import aiohttp

    async def get(path: str) -> Any:
        async with aiohttp.ClientSession() as http, http.get(url_of(server, path)) as resp:
            assert resp.status == 200
            return await resp.json()

    return get


async def test_a_demo_run_started_from_the_page_completes_live(
    live_server: ServerFactory, page: Any, screenshot_dir: Any
) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    batch_id = await start_run_from_page(page, "demo")
    # Mid-run: a job bar between 1 and 99, then a screenshot of the dashboard at work.
    await page.wait_for_selector(
        '#jobs [role=progressbar]:not([aria-valuenow="0"]):not([aria-valuenow="100"])', timeout=TIMEOUT_MS
    )
    await page.screenshot(path=str(screenshot_dir / "dashboard-mid-run.png"), full_page=True)
    await wait_for_batch_status(page, "completed")
    await page.wait_for_selector('#batch-bar[aria-valuenow="100"]')
    assert await page.get_attribute("body", "data-transport") == "websocket"
    await assert_page_matches_api(page, api_getter(server), batch_id)
    # The history table lists the finished run with its duration.
    await page.wait_for_selector("#history tbody tr .status[data-status=completed]", timeout=TIMEOUT_MS)


async def test_without_websocket_the_client_uses_server_sent_events(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await block_websocket(page)
    batch_id, transport = await run_demo_to_completion(page, server)
    assert transport == "sse"
    await assert_page_matches_api(page, api_getter(server), batch_id)


async def test_without_websocket_and_sse_the_client_polls(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await block_websocket(page)
    await block_event_source(page)
    batch_id, transport = await run_demo_to_completion(page, server)
    assert transport == "poll"
    await assert_page_matches_api(page, api_getter(server), batch_id)


async def test_cancel_from_the_page(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    batch_id = await start_run_from_page(page, "slow")
    await page.wait_for_selector('#batch-status[data-status="running"]', timeout=TIMEOUT_MS)
    await page.click("#cancel-batch")
    await wait_for_batch_status(page, "cancelled")
    assert await page.is_disabled("#cancel-batch")
    batch = await api_getter(server)(f"/api/collectors/runs/batch/{batch_id}")
    assert batch["status"] == "cancelled"


async def test_html_in_a_job_message_is_shown_as_text(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    await start_run_from_page(page, "html")
    message = page.locator("#jobs .job-message")
    await message.filter(has_text="<b>bold</b>").wait_for(timeout=TIMEOUT_MS)
    assert await message.text_content() == HTML_MESSAGE
    assert await page.locator("#jobs img, #jobs b").count() == 0
    assert await page.evaluate("() => window.pwned === undefined")


async def test_the_page_recovers_by_itself_when_the_server_restarts_mid_run(
    live_server: ServerFactory, page: Any
) -> None:
    server = await live_server()
    port = server.port
    await page.goto(url_of(server))
    batch_id = await start_run_from_page(page, "demo")
    await page.wait_for_selector('#batch-status[data-status="running"]', timeout=TIMEOUT_MS)
    # Stopping the server hands its running job back to the queue; the new one runs it again.
    await server.close()
    await page.wait_for_selector('#connection[data-state="lost"]', timeout=TIMEOUT_MS)
    restarted = await live_server(port=port)
    await wait_for_batch_status(page, "completed")
    await page.wait_for_selector('#batch-bar[aria-valuenow="100"]')
    batch = await api_getter(restarted)(f"/api/collectors/runs/batch/{batch_id}")
    assert batch["status"] == "completed"


async def test_an_unknown_batch_in_the_address_says_not_found(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server, "/?batch=bc_00000000"))
    error = page.locator("#error")
    await error.filter(has_text="not found").wait_for(timeout=TIMEOUT_MS)
    assert await error.get_attribute("role") == "alert"


async def test_a_run_can_be_started_and_followed_with_the_keyboard_only(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    await page.wait_for_selector("input[name=collector][value=demo]:checked")
    # Focus lands on the first control; Tab through to the Start button and press Enter.
    for _ in range(20):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement && document.activeElement.id") == "start-button":
            break
    else:
        raise AssertionError("the Start button cannot be reached with Tab")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#batch-id:not(:empty)", timeout=TIMEOUT_MS)
    # The history table follows the run's status changes without a reload.
    await page.wait_for_selector("#history tbody .status[data-status=running]", timeout=TIMEOUT_MS)


async def test_with_auth_on_the_page_asks_for_a_key_then_works_with_it(live_server: ServerFactory, page: Any) -> None:
    key = "dashboard-test-key-0123456789abcdef"
    server = await live_server(api_keys=(("trigger", key),))
    await page.goto(url_of(server))
    error = page.locator("#error")
    await error.filter(has_text="Not signed in").wait_for(timeout=TIMEOUT_MS)
    await page.click("#credentials summary")
    await page.fill("#api-key", key)
    await page.click("#save-key")
    await page.wait_for_selector("#error", state="hidden", timeout=TIMEOUT_MS)
    await start_run_from_page(page, "demo")
    await wait_for_batch_status(page, "completed")
    # The key is kept for this tab only, and never written into the page.
    assert await page.evaluate("() => sessionStorage.getItem('collector-hub-api-key')") == key
    assert key not in await page.content()
