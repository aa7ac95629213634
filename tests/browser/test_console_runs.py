"""Run operations from the console: a failed run re-run from its Run view, a job's log tailing
live while it runs, and the Runs view's filters and paging."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import LAUNCHES, ServerFactory
from tests.browser.console_helpers import POLL_MS, TIMEOUT_MS, api_get, api_post, cancel_if_active, url_of
from tests.support.conditions import eventually


async def test_a_failed_job_is_re_run_from_its_run_view(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    created = await api_post(server, "/api/collectors/run", {"collectors": ["demo", "failing"]})
    batch_id = created["batch_id"]
    await page.goto(url_of(server, f"/runs/{batch_id}"))
    await page.wait_for_selector('main[data-status="failed"]', timeout=TIMEOUT_MS)
    # The error is shown, and its log has the stderr line highlighted.
    failing = next(j for j in created["collectors"] if j["collector"] == "failing")
    # Its log panel (opened by itself if the job was still running when the view opened).
    await page.locator(f'.log-panel[data-job-id="{failing["job_id"]}"]').evaluate("el => { el.open = true; }")
    await page.locator(".log-panel .line.error").filter(has_text="the vendor said no").wait_for(timeout=TIMEOUT_MS)
    assert await page.is_visible("#rerun-failed")
    await page.click("#rerun-failed")
    # The new batch's view: it says what it re-runs, and holds only the failed job.
    await page.wait_for_function(
        f"() => /\\/runs\\/bc_\\d{{8}}$/.test(location.pathname) && !location.pathname.endsWith('{batch_id}')",
        polling=POLL_MS,
    )
    new_id = page.url.rsplit("/", 1)[1]
    await page.wait_for_selector(f'#run-facts a[href="/runs/{batch_id}"]', timeout=TIMEOUT_MS)
    rerun = await api_get(server, f"/api/collectors/runs/batch/{new_id}")
    assert rerun["rerun_of"] == batch_id
    assert [j["collector"] for j in rerun["collectors"]] == ["failing"]
    await page.wait_for_selector(f'#run-batch [data-job-id="{rerun["collectors"][0]["job_id"]}"]')


async def test_a_running_jobs_log_tails_live_and_pauses_when_scrolled_up(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    created = await api_post(server, "/api/collectors/run", {"collectors": ["chatty"]})
    job_id = created["collectors"][0]["job_id"]
    await page.goto(url_of(server, f"/runs/{created['batch_id']}"))
    panel = page.locator(f'.log-panel[data-job-id="{job_id}"]')
    # Opened by itself while the job runs; lines arrive while it runs.
    await panel.locator('.line[data-line="40"]').wait_for(timeout=TIMEOUT_MS)  # more than the box shows
    assert (await api_get(server, f"/api/collectors/runs/job/{job_id}"))["status"] == "running"
    log = panel.locator(".log")
    at_end = "el => el.scrollTop + el.clientHeight >= el.scrollHeight - 4"
    # The reader scrolls up: auto-scroll pauses and "Jump to end" appears; it brings them back.
    await log.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    await panel.locator(".jump-to-end").wait_for(timeout=TIMEOUT_MS)
    count = await panel.locator(".line").count()
    await eventually(lambda: _more_lines(panel, count), what="more lines")
    assert not await log.evaluate(at_end)
    await panel.locator(".jump-to-end").click()
    assert await log.evaluate(at_end)
    await panel.locator(".line.error").filter(has_text="Traceback").wait_for(timeout=TIMEOUT_MS)
    assert await panel.locator(".line").count() >= 121


async def _more_lines(panel: Any, count: int) -> bool:
    return bool(await panel.locator(".line").count() > count)


async def test_a_queued_jobs_log_opens_once_it_runs_unless_the_operator_chose(
    live_server: ServerFactory, page: Any
) -> None:
    """The view opens while its jobs are queued (a server with no runner), and a runner on the
    same database starts them afterwards: the log nobody touched opens by itself and tails live,
    and the one the operator opened and closed again stays closed. (A log that opened only for a
    job already running at the view's first read never opened when the runner was a moment late.)"""
    server = await live_server(run_collectors=False)  # the jobs stay queued until a runner comes
    created = await api_post(server, "/api/collectors/run", {"collectors": ["chatty", "slow"]})
    chatty, slow = (job["job_id"] for job in created["collectors"])
    await page.goto(url_of(server, f"/runs/{created['batch_id']}"))
    panel = page.locator(f'.log-panel[data-job-id="{chatty}"]')
    chosen = page.locator(f'.log-panel[data-job-id="{slow}"]')
    await chosen.wait_for(timeout=TIMEOUT_MS)
    await panel.wait_for(timeout=TIMEOUT_MS)
    assert not await panel.evaluate("el => el.open")
    # The operator opens the slow job's log and closes it again, with the keyboard: their choice.
    await chosen.locator("summary").press("Enter")
    await page.wait_for_function("el => el.open", arg=await chosen.element_handle(), polling=POLL_MS)
    await chosen.locator("summary").press("Enter")
    await page.wait_for_function("el => !el.open", arg=await chosen.element_handle(), polling=POLL_MS)
    await live_server()  # a second server, with a runner, on the same database: it starts both
    running = '#run-batch [data-job-id="{}"] .status[data-status="running"]'
    await page.wait_for_selector(running.format(slow), timeout=TIMEOUT_MS)
    await panel.locator('.line[data-line="40"]').wait_for(timeout=TIMEOUT_MS)
    assert (await api_get(server, f"/api/collectors/runs/job/{chatty}"))["status"] == "running"
    assert not await chosen.evaluate("el => el.open")  # drawn running, and still closed
    await cancel_if_active(server, created["batch_id"])  # the slow job runs for ten minutes


async def test_runs_filter_and_page(live_server: ServerFactory, page: Any) -> None:
    server = await live_server(run_collectors=False)  # everything stays queued
    ids = [(await api_post(server, "/api/collectors/run", {"collectors": ["demo"]}))["batch_id"] for _ in range(27)]
    html = (await api_post(server, "/api/collectors/run", {"collectors": ["html"]}))["batch_id"]
    await page.goto(url_of(server, "/runs"))
    await page.wait_for_selector(f'#runs tr[data-batch-id="{html}"]', timeout=TIMEOUT_MS)
    rows = "rows => rows.map(r => r.dataset.batchId)"
    first = await page.eval_on_selector_all("#runs tbody tr", rows)
    assert first[:25] == [html, *reversed(ids[3:])]  # newest first (older tests' runs come after)
    # Older runs: the next page has the rest, with no repeat; back returns to the first.
    await page.click("#older-page")
    await page.wait_for_selector(f'#runs tr[data-batch-id="{ids[0]}"]', timeout=TIMEOUT_MS)
    second = await page.eval_on_selector_all("#runs tbody tr", rows)
    assert second[:3] == list(reversed(ids[:3]))
    assert not set(first) & set(second)
    await page.go_back()
    await page.wait_for_selector(f'#runs tr[data-batch-id="{html}"]', timeout=TIMEOUT_MS)
    # Filters: by collector, then a status nothing has.
    await page.select_option("#filter-collector", "html")
    await page.click("#runs-filters button[type=submit]")
    await page.wait_for_url("**/runs?collectors=html")
    await page.wait_for_function("() => document.querySelectorAll('#runs tbody tr').length === 1", polling=POLL_MS)
    assert await page.get_attribute("#runs tbody tr", "data-batch-id") == html
    await page.select_option("#filter-status", "failed")
    await page.fill("#filter-since", "2020-01-01")
    await page.click("#runs-filters button[type=submit]")
    await page.wait_for_url("**/runs?collectors=html&status=failed&since=2020-01-01")
    await page.locator("#runs td").filter(has_text="No runs match").wait_for(timeout=TIMEOUT_MS)


async def test_the_overview_shows_runners_and_seven_day_figures(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    created = await api_post(server, "/api/collectors/run", {"collectors": ["html", "failing"], "priority": "high"})
    await page.goto(url_of(server, f"/runs/{created['batch_id']}"))
    await page.wait_for_selector('main[data-status="failed"]', timeout=TIMEOUT_MS)
    await page.click('nav a[href="/"]')
    # This server's runner, live, with its load; each collector's success rate over 7 days.
    runner = page.locator("#runners tbody tr[data-runner-id]")
    await runner.first.wait_for(timeout=TIMEOUT_MS)
    assert "live" in (await runner.first.text_content() or "")
    html_row = page.locator('#collectors tr[data-collector="html"]')
    await html_row.locator("td", has_text="100%").wait_for(timeout=TIMEOUT_MS)
    failing_row = page.locator('#collectors tr[data-collector="failing"]')
    await failing_row.locator("td", has_text="0%").wait_for(timeout=TIMEOUT_MS)
    assert await failing_row.locator("svg.spark").count() == 1
    # The collector's own page: its charts and the last error.
    await failing_row.locator("a").click()
    await page.wait_for_url("**/collectors/failing")
    await page.locator("#last-error").filter(has_text="vendor said no").wait_for(timeout=TIMEOUT_MS)
    assert await page.locator("#runs-chart svg rect.col").count() >= 1


async def test_the_browser_draws_no_page_of_its_own_ui(browser: Any, page: Any) -> None:
    """tests/browser/conftest.py: the browser is Chromium's headless shell, so no page of the
    browser's own UI (an omnibox popup, a tab strip) is open and drawing beside the test's."""
    await page.goto("about:blank")
    session = await browser.new_browser_cdp_session()
    try:
        version = await session.send("Browser.getVersion")
        targets = (await session.send("Target.getTargets"))["targetInfos"]
    finally:
        await session.detach()
    assert version["product"].startswith("HeadlessChrome/"), version
    assert [t["url"] for t in targets if t["url"].startswith("chrome")] == [], targets


async def test_every_test_of_a_process_shares_its_one_chromium(page: Any) -> None:
    """Last in this module, so after its other browser tests in this process: they, and this one,
    all used the one Chromium started at the first (tests/browser/conftest.py says why)."""
    assert page.context.browser is LAUNCHES[0]
    assert len(LAUNCHES) == 1, f"{len(LAUNCHES)} Chromiums started in this test process"
