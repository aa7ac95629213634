"""The console's shell: addresses and history, the connection indicator through a server
restart, the API key prompt, keyboard-only use, the icon, and server text shown as text."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.browser.conftest import HTML_MESSAGE, ServerFactory
from tests.browser.console_helpers import (
    POLL_MS,
    TIMEOUT_MS,
    api_get,
    api_post,
    enable_debug,
    new_context,
    screenshot,
    start_from_overview,
    url_of,
    wait_live,
)
from tests.support.conditions import eventually


async def test_the_icon_is_served(live_server: ServerFactory) -> None:
    server = await live_server()
    async with aiohttp.ClientSession() as http, http.get(url_of(server, "/favicon.ico")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "image/x-icon"
        assert (await resp.read())[:4] == b"\x00\x00\x01\x00"  # an ICO header


async def test_each_view_has_an_address_and_back_and_forward_work(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    created = await api_post(server, "/api/collectors/run", {"collectors": ["demo"]})
    batch_id = created["batch_id"]
    # A shared link opens its view directly.
    await page.goto(url_of(server, f"/runs/{batch_id}"))
    await page.wait_for_selector(f'#run-batch [data-batch-id="{batch_id}"]', timeout=TIMEOUT_MS)
    assert await page.title() == f"Run {batch_id} · Collector Hub"
    await page.click('nav a[href="/runs"]')
    await page.wait_for_selector(f'#runs a[href="/runs/{batch_id}"]', timeout=TIMEOUT_MS)
    await page.select_option("#filter-collector", "slow")
    await page.click("#runs-filters button[type=submit]")
    await page.wait_for_url("**/runs?collectors=slow")
    await page.wait_for_selector("#runs td[colspan]", timeout=TIMEOUT_MS)  # no slow run yet
    # Back: the unfiltered list, then the run; forward again: the filtered list. No reloads.
    await page.evaluate("() => { window.sameDocument = true; }")
    await page.go_back()
    await page.wait_for_url(url_of(server, "/runs"))
    await page.wait_for_selector(f'#runs a[href="/runs/{batch_id}"]', timeout=TIMEOUT_MS)
    await page.go_back()
    await page.wait_for_url(f"**/runs/{batch_id}")
    await page.wait_for_selector(f'#run-batch [data-batch-id="{batch_id}"]', timeout=TIMEOUT_MS)
    await page.go_forward()
    await page.go_forward()
    await page.wait_for_url("**/runs?collectors=slow")
    await page.wait_for_function("() => document.querySelector('#filter-collector')?.value === 'slow'", polling=POLL_MS)
    assert await page.evaluate("() => window.sameDocument") is True
    assert await page.get_attribute('nav a[href="/runs"]', "aria-current") == "page"


async def test_an_unknown_run_says_not_found(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server, "/runs/bc_00000000"))
    await page.locator("#error").filter(has_text="was not found").wait_for(timeout=TIMEOUT_MS)
    async with aiohttp.ClientSession() as http, http.get(url_of(server, "/runs/bc_0")) as resp:
        assert resp.status == 404  # a malformed id is not a console address


async def test_a_run_in_progress_when_the_page_opens_is_shown_at_once(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    created = await api_post(server, "/api/collectors/run", {"collectors": ["slow", "demo"]})
    batch_id = created["batch_id"]
    await page.goto(url_of(server))
    card = page.locator(f'#active-batches [data-batch-id="{batch_id}"]')
    await card.wait_for(timeout=TIMEOUT_MS)
    assert await card.locator(".job-row").count() == 2  # both jobs, each with its bar
    await card.locator(".cancel-batch").click()
    await page.wait_for_selector(f'#finished-batches [data-batch-id="{batch_id}"] .status[data-status="cancelled"]')
    assert (await api_get(server, f"/api/collectors/runs/batch/{batch_id}"))["status"] == "cancelled"
    assert "cancelled" in (await page.text_content("#announcer") or "")


async def test_a_run_first_seen_by_one_of_its_jobs_is_drawn_whole(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    first = (await api_post(server, "/api/collectors/run", {"collectors": ["slow", "demo"]}))["batch_id"]
    second = (await api_post(server, "/api/collectors/run", {"collectors": ["demo"]}))["batch_id"]  # demo's latest
    # So the page learns of the first batch by its slow job alone and reads the batch for the
    # rest; the read is held back to make the in-between visible if it were ever drawn.
    read_first = asyncio.Event()

    async def hold(route: Any) -> None:
        await read_first.wait()
        await route.continue_()

    await page.route(f"**/api/collectors/runs/batch/{first}", hold)
    await enable_debug(page)  # window.collectorHubConsole.batches
    await page.goto(url_of(server))
    card = page.locator(f'#active-batches [data-batch-id="{first}"]')
    await wait_live(page, "websocket")
    # The second batch is drawn (its read is not held): the first one's job came in the same
    # burst of the stream, so it would have been drawn by now too.
    await page.locator(f'#active-batches [data-batch-id="{second}"]').wait_for(timeout=TIMEOUT_MS)
    await page.wait_for_function(
        "id => (window.collectorHubConsole.batches.get(id)?.jobs.size ?? 0) >= 1",
        arg=first,
        timeout=TIMEOUT_MS,
        polling=POLL_MS,
    )
    assert await card.count() == 0  # known by one job: not drawn yet, half empty
    read_first.set()
    await card.wait_for(timeout=TIMEOUT_MS)
    assert await card.locator(".job-row").count() == 2


async def test_the_indicator_tells_the_truth_through_a_server_restart(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    port = server.port
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    batch_id = await start_from_overview(page, "demo")
    await server.close()
    # Down: reconnecting, saying which attempt and when the next one comes; never "live".
    indicator = page.locator('#connection[data-state="reconnecting"]')
    await indicator.filter(has_text="attempt").wait_for(timeout=TIMEOUT_MS)
    assert not (await page.text_content("#connection") or "").startswith("Live")
    restarted = await live_server(port=port)
    # Back by itself; the run that was interrupted is re-run by the new server and completes.
    await page.wait_for_selector('#connection[data-state="live"], #connection[data-state="polling"]', timeout=60_000)
    await page.wait_for_selector(
        f'[data-batch-id="{batch_id}"] > .batch-head .status[data-status="completed"]', timeout=60_000
    )
    assert (await api_get(restarted, f"/api/collectors/runs/batch/{batch_id}"))["status"] == "completed"


async def test_a_run_that_ends_while_the_console_is_away_is_shown_ended(live_server: ServerFactory, page: Any) -> None:
    # Resuming, a stream brings each collector's active (else latest) run: a run that ended
    # while the page was away, while another run of its collector was active, has no state
    # left for any stream to bring. The console reads its active batches again once back.
    server = await live_server()
    port = server.port
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    batch_id = await start_from_overview(page, "demo")
    later = (await api_post(server, "/api/collectors/run", {"collectors": ["demo"]}))["batch_id"]
    await server.close()
    await page.locator('#connection[data-state="reconnecting"]').wait_for(timeout=TIMEOUT_MS)
    # Another server, on a port the page does not know, runs both; the first one ends.
    elsewhere = await live_server()

    async def ended() -> bool:
        return (await api_get(elsewhere, f"/api/collectors/runs/batch/{batch_id}"))["status"] == "completed"

    await eventually(ended, timeout=60, what=f"{batch_id} to complete")
    latest = await api_get(elsewhere, "/api/collectors/runs/latest?collectors=demo")
    assert latest["latest_runs"][0]["batch_id"] == later  # so no stream brings the first one's end
    await live_server(port=port, run_collectors=False)
    await page.wait_for_selector(
        f'[data-batch-id="{batch_id}"] > .batch-head .status[data-status="completed"]', timeout=TIMEOUT_MS
    )


async def test_offline_is_said_when_the_browser_loses_the_network(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    await page.context.set_offline(True)
    await page.wait_for_selector('#connection[data-state="offline"]', timeout=TIMEOUT_MS)
    await page.context.set_offline(False)
    await page.wait_for_selector('#connection[data-state="live"], #connection[data-state="polling"]', timeout=60_000)


async def test_html_in_a_job_message_is_shown_as_text(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    await start_from_overview(page, "html")
    message = page.locator("#active-batches .job-message")
    await message.filter(has_text="<b>bold</b>").first.wait_for(timeout=TIMEOUT_MS)
    assert await message.first.text_content() == HTML_MESSAGE
    assert await page.locator("main img, main b").count() == 0
    assert await page.evaluate("() => window.pwned === undefined")


async def test_with_auth_on_the_page_asks_for_a_key_once_per_tab(live_server: ServerFactory, page: Any) -> None:
    key = "console-test-key-0123456789abcdef"
    server = await live_server(api_keys=(("trigger", key),))
    await page.goto(url_of(server))
    await page.wait_for_selector("#key-dialog[open]", timeout=TIMEOUT_MS)
    await page.fill("#api-key", key)
    await page.keyboard.press("Enter")
    await wait_live(page, "websocket")
    batch_id = await start_from_overview(page, "demo")
    # Kept for this tab: a reload does not ask again; never written into the page.
    await page.reload()
    await wait_live(page, "websocket")
    assert not await page.is_visible("#key-dialog")
    assert await page.evaluate("() => sessionStorage.getItem('collector-hub-api-key')") == key
    assert await page.evaluate("() => localStorage.length") == 0
    assert key not in await page.content()
    await page.goto(url_of(server, f"/runs/{batch_id}"))
    await page.wait_for_selector(f'#run-batch [data-batch-id="{batch_id}"]', timeout=TIMEOUT_MS)


async def test_a_read_only_key_hides_the_buttons_it_cannot_use(live_server: ServerFactory, page: Any) -> None:
    reader = "console-reader-key-0123456789abcdef"
    trigger = "console-trigger-key-0123456789abcd"
    server = await live_server(api_keys=(("read", reader), ("trigger", trigger)))
    created = await api_post(server, "/api/collectors/run", {"collectors": ["slow"]}, key=trigger)
    await page.goto(url_of(server))
    await page.fill("#api-key", reader)
    await page.click("#save-key")
    card = page.locator(f'#active-batches [data-batch-id="{created["batch_id"]}"]')
    await card.wait_for(timeout=TIMEOUT_MS)
    await page.wait_for_selector("#queue dd", timeout=TIMEOUT_MS)
    assert await page.locator("#start-form, .cancel-batch, .cancel-job").count() == 0
    await page.goto(url_of(server, f"/runs/{created['batch_id']}"))
    await page.wait_for_selector("#run-batch .job-row", timeout=TIMEOUT_MS)
    assert await page.locator(".cancel-batch, .cancel-job").count() == 0
    # Leave no slow run behind for the next test's runner (the database is shared).
    await api_post(server, f"/api/collectors/runs/batch/{created['batch_id']}/cancel", None, key=trigger)


async def test_a_run_that_ends_while_its_link_has_the_focus_keeps_it(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    batch_id = (await api_post(server, "/api/collectors/run", {"collectors": ["demo"]}))["batch_id"]
    link = f'[data-batch-id="{batch_id}"] .batch-link'
    await page.focus(f"#active-batches {link}", timeout=TIMEOUT_MS)
    # The card moves to the finished list when the run ends; a keyboard user's focus moves with it.
    await page.wait_for_selector(f"#finished-batches {link}", timeout=TIMEOUT_MS)
    assert await page.evaluate(f"() => document.activeElement.matches({link!r})")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/runs/{batch_id}")


async def test_keyboard_only_start_a_run_and_open_it(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    await page.wait_for_selector("#start-form input[value=demo]")

    async def tab_to(selector: str) -> None:
        for _ in range(40):
            await page.keyboard.press("Tab")
            if await page.evaluate(f"() => document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"{selector} cannot be reached with Tab")

    await tab_to("#start-form input[value=demo]")
    await page.keyboard.press("Space")
    await tab_to("#start-button")
    before = await page.eval_on_selector_all("[data-batch-id]", "els => els.map(e => e.dataset.batchId)")
    await page.keyboard.press("Enter")
    new_card = await page.wait_for_function(
        "(before) => [...document.querySelectorAll('#active-batches [data-batch-id]')]"
        ".map(e => e.dataset.batchId).find(id => !before.includes(id))",
        arg=before,
        timeout=TIMEOUT_MS,
        polling=POLL_MS,
    )
    batch_id = await new_card.json_value()
    await tab_to(f'[data-batch-id="{batch_id}"] .batch-link')
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/runs/{batch_id}")
    # Focus moves to the new view's heading, as after a page load.
    await page.wait_for_function("() => document.activeElement.tagName === 'H1'", polling=POLL_MS)
    await page.wait_for_selector('main[data-status="completed"]', timeout=TIMEOUT_MS)


# The Overview's queue figures are numbers: it has read the runs in progress.
KNOWN_FIGURES = "() => /^[0-9]+$/.test(document.querySelector('#running-count')?.textContent ?? '')"
VIEWS_TO_OPEN = ("/", "/runs", "/runs/bc_00000001", "/schedules", "/inventory", "/collectors/demo")


async def test_without_a_key_every_view_says_the_same_and_the_dialog_says_how_to_get_one(
    live_server: ServerFactory, page: Any, screenshot_dir: Path
) -> None:
    key = "console-reader-key-0123456789abcdef"
    server = await live_server(api_keys=(("read", key),))
    banners = {}
    for path in VIEWS_TO_OPEN:
        await page.goto(url_of(server, path))
        dialog = page.locator("#key-dialog[open]")
        await dialog.wait_for(timeout=TIMEOUT_MS)
        assert "collector-hub keys create --role read --name console" in " ".join(
            (await dialog.text_content() or "").split()
        )
        if path == "/":
            await screenshot(page, screenshot_dir, "console-key-dialog")
        await page.click("#key-cancel")
        banner = page.locator("#error")
        await banner.wait_for(timeout=TIMEOUT_MS)
        banners[path] = await banner.text_content()
        if path == "/":
            # Behind the prompt the Overview cannot know what runs: it claims nothing.
            await page.wait_for_selector('#connection[data-state="stopped"]', timeout=TIMEOUT_MS)
            assert await page.text_content("#running-count") == "—"
            assert await page.text_content("#queued-count") == "—"
            assert not await page.is_visible("#no-active")
            await screenshot(page, screenshot_dir, "console-overview-without-key")
    assert len(set(banners.values())) == 1, banners
    [text] = set(banners.values())
    assert "API key" in (text or "")
    assert "X-API-Key" not in (text or "") and "Bearer" not in (text or ""), "the API's own words"
    # With a key the Overview knows, and says so.
    await page.goto(url_of(server))
    await page.fill("#api-key", key)
    await page.keyboard.press("Enter")
    await wait_live(page, "websocket")
    await page.wait_for_function(KNOWN_FIGURES, timeout=TIMEOUT_MS, polling=POLL_MS)


async def test_a_view_whose_script_fails_to_load_says_so(
    live_server: ServerFactory, page: Any, screenshot_dir: Path
) -> None:
    server = await live_server()
    await page.route("**/static/console/views/runs.js", lambda route: route.abort())
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    await page.click('nav a[href="/runs"]')
    await page.wait_for_url("**/runs")
    await page.locator("main h1").filter(has_text="could not be opened").wait_for(timeout=TIMEOUT_MS)
    assert "views/runs.js" in (await page.text_content("#view-failure") or "")  # what failed
    assert await page.is_visible("#reload-view")
    await screenshot(page, screenshot_dir, "console-view-failed")
    # Another view still opens.
    await page.click('nav a[href="/schedules"]')
    await page.locator("main h1").filter(has_text="Schedules").wait_for(timeout=TIMEOUT_MS)
    assert not await page.is_visible("#error")


async def test_timings_and_window_handles_only_in_debug_mode(live_server: ServerFactory, browser: Any) -> None:
    server = await live_server()
    for debug in (False, True):
        context = await new_context(browser)
        page = await context.new_page()
        try:
            if debug:
                await enable_debug(page)
            await page.goto(url_of(server))
            await wait_live(page, "websocket")
            await page.wait_for_function(KNOWN_FIGURES, timeout=TIMEOUT_MS, polling=POLL_MS)
            handles = await page.evaluate(
                "() => Object.keys(window).filter(k => /collectorhub/i.test(k))"
                ".concat(window.collectorHubConsole ? Object.keys(window.collectorHubConsole) : [])"
            )
            if debug:
                assert set(handles) >= {"collectorHubConsole", "stats", "batches", "transport", "tracker"}
                assert await page.evaluate("() => window.collectorHubConsole.transport()") == "websocket"
                assert await page.evaluate("() => typeof window.collectorHubConsole.stats.frames") == "number"
            else:
                assert handles == []
        finally:
            await context.close()
