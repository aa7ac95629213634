"""What the console's browser tests share: addresses, transport blocking, waiting on the page,
screenshots, and REST calls to check the page against the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from axe_playwright_python.base import AXE_SCRIPT

TIMEOUT_MS = 30_000
# How often page.wait_for_function tests its condition. Playwright's default is every animation
# frame (polling="raf"), which keeps a waiting page rendering: about 70 ms of Chromium's CPU per
# second of waiting, against about 10 ms at every 100 ms. No wait here needs a frame's precision.
POLL_MS = 100
TRANSPORTS = ("websocket", "sse", "poll")
# The widths every view is checked at: a phone's, and a desktop's.
PHONE_AND_DESKTOP = ((390, 844), (1280, 900))
# Every browser context of these tests asks for reduced motion, as a user may in their system's
# settings: the console's progress bars then show each new value at once instead of sliding to it
# for a quarter of a second (static/console/console.css), a frame drawn every 16 ms, by the page
# and Chromium's compositor, for each move of a bar. A run of the demo on the Overview cost 0.87-1.02
# CPU-s over 8 s with the slide, 0.49-0.67 without. No test looks at the slide.
CONTEXT_OPTIONS: dict[str, Any] = {"reduced_motion": "reduce"}


async def new_context(browser: Any, **options: Any) -> Any:
    """A browser context of its own for a test (CONTEXT_OPTIONS, then ``options``)."""
    return await browser.new_context(**{**CONTEXT_OPTIONS, **options})


def url_of(server: Any, path: str = "/") -> str:
    return str(server.make_url(path))


async def block_websocket(page: Any) -> None:
    async def refuse(ws: Any) -> None:
        await ws.close(code=1011, reason="blocked by the test")

    await page.route_web_socket("**/api/ws*", refuse)


async def block_event_source(page: Any) -> None:
    await page.route("**/events*", lambda route: route.abort())


async def force_transport(page: Any, transport: str) -> None:
    """Leave the page only ``transport``: WebSocket blocked for sse, WebSocket and SSE for poll."""
    if transport in ("sse", "poll"):
        await block_websocket(page)
    if transport == "poll":
        await block_event_source(page)


# What the connection indicator says when the console is live on each transport.
LIVE_TEXT = {"websocket": "Live (WebSocket)", "sse": "Live (Server-Sent Events)", "poll": "Live (polling)"}


async def wait_live(page: Any, transport: str) -> None:
    """The connection indicator says the console is live on ``transport``."""
    state = "polling" if transport == "poll" else "live"
    await page.wait_for_selector(f'#connection[data-state="{state}"]', timeout=TIMEOUT_MS)
    assert await page.text_content("#connection") == LIVE_TEXT[transport]


async def enable_debug(page_or_context: Any) -> None:
    """Turn on the console's debug mode (static/console/debug.js) for the pages opened from now
    on: its timings and its handles on ``window.collectorHubConsole``."""
    await page_or_context.add_init_script(
        "try { sessionStorage.setItem('collector-hub-debug', '1'); } catch (e) { /* about:blank */ }"
    )


async def api_get(server: Any, path: str, key: str | None = None) -> Any:
    headers = {"X-API-Key": key} if key else {}
    async with aiohttp.ClientSession() as http, http.get(url_of(server, path), headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def api_post(server: Any, path: str, body: Any, key: str | None = None) -> Any:
    headers = {"X-API-Key": key} if key else {}
    async with aiohttp.ClientSession() as http, http.post(url_of(server, path), json=body, headers=headers) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


async def cancel_if_active(server: Any, batch_id: str, key: str | None = None) -> None:
    """Leave no run behind for the next test's runner (a test module shares its database): cancel
    ``batch_id`` unless it has ended by itself meanwhile (409: terminal states are final)."""
    headers = {"X-API-Key": key} if key else {}
    url = url_of(server, f"/api/collectors/runs/batch/{batch_id}/cancel")
    async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as resp:
        assert resp.status in (200, 409), await resp.text()


async def start_from_overview(page: Any, *collectors: str) -> str:
    """Tick exactly ``collectors`` on the Overview and press Start; returns the new batch id
    (the newest card in the active list)."""
    await page.wait_for_selector("#start-form input[name=collector]", timeout=TIMEOUT_MS)
    before = set(
        await page.eval_on_selector_all("#active-batches [data-batch-id]", "els => els.map(e => e.dataset.batchId)")
    )
    for box in await page.query_selector_all("#start-form input[name=collector]"):
        if (await box.get_attribute("value")) in collectors:
            await box.check()
        else:
            await box.uncheck()
    await page.click("#start-button")
    handle = await page.wait_for_function(
        """(before) => [...document.querySelectorAll('#active-batches [data-batch-id]')]
               .map(e => e.dataset.batchId).find(id => !before.includes(id))""",
        arg=sorted(before),
        timeout=TIMEOUT_MS,
        polling=POLL_MS,
    )
    return str(await handle.json_value())


async def click_in_view(page: Any, selector: str) -> None:
    """Click ``selector`` once it is in view and has stopped moving. Playwright's click waits for
    the element to be stable and then scrolls it into view, and it checks what is under the
    pointer at the press only: rows drawn with ``content-visibility`` (the Variances list) that
    this scroll brings into view take their drawn height a frame later (at 1280 px about 1 px
    less each, at 390 px about 4 px), so what is below them moves (19 and 44 px measured), and a
    release that comes after that move is no click at all. Scrolled into view first, the click's
    own stability check sees the move and waits it out."""
    target = page.locator(selector)
    await target.scroll_into_view_if_needed(timeout=TIMEOUT_MS)
    await target.click(timeout=TIMEOUT_MS)


# The address changes and the router draws its view, as on back and forward (static/console/router.js).
SAME_PAGE_NAVIGATION = "path => { history.pushState(null, '', path); dispatchEvent(new PopStateEvent('popstate')); }"
QUIET_S = 0.5  # what Playwright's "networkidle" waits for after a load: no request for 500 ms


async def open_in_page(page: Any, path: str) -> None:
    """Open the console's view at ``path`` in the page already open, without loading the page
    again (0.2 CPU-s against 0.45 for a load of the page, most of it Chromium's), and wait as a
    load's "networkidle" does: until no request of the page has been in flight for 500 ms, which
    after a same-document navigation Playwright's own load states do not wait for. The quiet
    time counts from the view's heading: the router empties ``main`` as the address changes,
    and a view starts reading its data as it mounts, which draws its heading, so by then its
    first requests have been reported here, however late the page's events arrive on a loaded
    machine. For a page live over WebSocket only: an EventSource's request (SSE, and polling's
    long-poll) stays in flight, so such a page is never quiet and this fails at its timeout."""
    in_flight: set[Any] = set()
    changed = asyncio.Event()

    def started(request: Any) -> None:
        in_flight.add(request)
        changed.set()

    def ended(request: Any) -> None:
        in_flight.discard(request)
        changed.set()

    events = {"request": started, "requestfinished": ended, "requestfailed": ended}
    for event, handler in events.items():
        page.on(event, handler)
    try:
        async with asyncio.timeout(TIMEOUT_MS / 1000):
            await page.evaluate(SAME_PAGE_NAVIGATION, path)
            await page.wait_for_selector("main h1", timeout=TIMEOUT_MS)
            while True:
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), None if in_flight else QUIET_S)
                except TimeoutError:
                    return  # nothing in flight, and nothing started for QUIET_S
    finally:
        for event, handler in events.items():
            page.remove_listener(event, handler)


async def no_horizontal_scroll(page: Any) -> None:
    width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide in a {width[1]} px window"


async def screenshot(page: Any, directory: Path, name: str) -> None:
    await page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


@asynccontextmanager
async def page_at(browser: Any, width: int, height: int, scheme: str) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page in a window of ``width`` x ``height`` in ``scheme`` (light or dark), in a context of
    its own, closed afterwards; with the list of the errors its scripts raise."""
    context = await new_context(browser, viewport={"width": width, "height": height}, color_scheme=scheme)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page, errors
    finally:
        await context.close()


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page: the scan axe-playwright-python's ``Axe().run(page)``
    makes (the same axe-core, the same options), with two costs it adds left out. axe-core (570
    kB of script) goes into a document once, not again for each scan of a document a view was
    opened in by a link (0.07 CPU-s each). And only the violations come back: the results also
    list every rule that passed or did not apply, with a node each, which cost 0.15 CPU-s a scan
    to serialise and pass through Playwright (0.35 -> 0.20 CPU-s a scan)."""
    if not await page.evaluate("() => 'axe' in window"):
        await page.evaluate(AXE_SCRIPT)
    violations: list[dict[str, Any]] = await page.evaluate(
        "() => axe.run({resultTypes: ['violations']}).then(results => results.violations)"
    )
    return violations


async def fits_and_passes_axe(page: Any, directory: Path, name: str, scheme: str) -> list[str]:
    """Once the page is idle: no horizontal scroll, a screenshot
    (``console-<name>-<width>[-dark].png``), and the serious or critical axe violations, as lines."""
    await page.wait_for_load_state("networkidle")
    await no_horizontal_scroll(page)
    width = page.viewport_size["width"]
    await screenshot(page, directory, f"console-{name}-{width}{'' if scheme == 'light' else '-dark'}")
    return [
        f"{name} {width}px {scheme}: {violation['id']} {[node['target'] for node in violation['nodes']][:3]}"
        for violation in await axe_violations(page)
        if violation["impact"] in ("serious", "critical")
    ]
