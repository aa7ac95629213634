"""The Overview's figures and forms: the running-jobs figure and each runner's load from the same
live state, the Start form (collector names, nothing to submit before they are loaded), each
collector's row when it never ran, job names whole at 390 px, a long-open tab that forgets
old finished runs, and a collector's link that outlives its row's redraws."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import (
    POLL_MS,
    TIMEOUT_MS,
    api_get,
    api_post,
    enable_debug,
    new_context,
    start_from_overview,
    url_of,
    wait_live,
)

# Both read in one evaluation, so they come from the same drawn frame.
FIGURE_AND_LOAD = """() => [
    document.querySelector('#running-count')?.textContent,
    document.querySelector('#runners tr[data-runner-id] td[data-label="Load"]')?.textContent,
]"""


async def test_running_jobs_and_the_runners_load_agree(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    await page.locator("#runners tr[data-runner-id]").wait_for(timeout=TIMEOUT_MS)
    batch_id = await start_from_overview(page, "slow")
    await page.locator("#running-count").filter(has_text="1").wait_for(timeout=TIMEOUT_MS)
    running, load = await page.evaluate(FIGURE_AND_LOAD)
    [runner] = [r for r in (await api_get(server, "/api/runners"))["runners"] if r["live"]]
    # The runner's heartbeat (every 10 s) has not listed the job yet; the page shows it at once.
    assert (running, load) == ("1", f"1 of {runner['capacity']}"), "the runner's load disagrees with the running jobs"
    await page.locator(f'[data-batch-id="{batch_id}"] .cancel-batch').click()
    await page.locator("#running-count").filter(has_text="0").wait_for(timeout=TIMEOUT_MS)
    running, load = await page.evaluate(FIGURE_AND_LOAD)
    assert (running, load) == ("0", f"0 of {runner['capacity']}")


async def test_start_lists_collector_names_and_waits_for_them(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    names = [c["name"] for c in (await api_get(server, "/api/collectors"))["collectors"]]
    listed = asyncio.Event()

    async def hold(route: Any) -> None:
        await listed.wait()
        await route.continue_()

    await page.route("**/api/collectors", hold)
    await page.goto(url_of(server))
    # The form is there at once, but there is nothing to submit until the collectors are in.
    await page.locator("#start-form").wait_for(timeout=TIMEOUT_MS)
    assert await page.is_disabled("#start-button")
    assert await page.locator("#start-form input[name=collector]").count() == 0
    await page.locator("#start-button").click(force=True)
    assert not await page.is_visible("#error")
    listed.set()
    await page.locator("#start-form input[name=collector]").first.wait_for(timeout=TIMEOUT_MS)
    assert not await page.is_disabled("#start-button")
    labels = await page.eval_on_selector_all("#start-form .choices label", "els => els.map(e => e.textContent.trim())")
    assert labels == names  # as `collector-hub run NAME` takes them, not the job names
    batch_id = await start_from_overview(page, "failing")
    started = await api_get(server, f"/api/collectors/runs/batch/{batch_id}")
    assert [job["collector"] for job in started["collectors"]] == ["failing"]
    # Ended before the server stops, so that no job of it is handed to the next test's runner.
    await page.locator(f'[data-batch-id="{batch_id}"] > .batch-head .status[data-status="failed"]').wait_for(
        timeout=TIMEOUT_MS
    )


async def test_a_collector_that_never_ran_says_so(live_server: ServerFactory, page: Any, tmp_path: Path) -> None:
    collectors = tmp_path / "collectors.toml"
    collectors.write_text(
        f'[collectors.quiet]\ncommand = ["{sys.executable}", "-c", "pass"]\n\n'
        f'[collectors.idle]\ncommand = ["{sys.executable}", "-c", "pass"]\n'
    )
    server = await live_server(collectors_file=collectors)
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    for name in ("idle", "quiet"):
        await (
            page.locator(f'#collectors tr[data-collector="{name}"]')
            .filter(has_text="No runs yet")
            .wait_for(timeout=TIMEOUT_MS)
        )
    await start_from_overview(page, "quiet")
    quiet = page.locator('#collectors tr[data-collector="quiet"]')
    await quiet.locator('.status[data-status="completed"]').wait_for(timeout=TIMEOUT_MS)
    assert "No runs yet" not in (await quiet.text_content() or "")
    assert "No runs yet" in (await page.locator('#collectors tr[data-collector="idle"]').text_content() or "")


LINES_OF = """els => els.map(e => {
    const range = document.createRange();
    range.selectNodeContents(e);
    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
    return [e.textContent, tops.size];
})"""


async def test_job_names_are_not_broken_at_a_phones_width(
    live_server: ServerFactory, browser: Any, screenshot_dir: Path
) -> None:
    server = await live_server(run_collectors=False)  # the jobs stay queued, each with Cancel
    created = await api_post(server, "/api/collectors/run", {"collectors": ["demo", "failing", "chatty", "slow"]})
    context = await new_context(browser, viewport={"width": 390, "height": 844})
    page = await context.new_page()
    try:
        for view, path in (("overview", "/"), ("run", f"/runs/{created['batch_id']}")):
            await page.goto(url_of(server, path))
            await page.locator(f'[data-batch-id="{created["batch_id"]}"] .job-name').first.wait_for(timeout=TIMEOUT_MS)
            names = await page.eval_on_selector_all(f'[data-batch-id="{created["batch_id"]}"] .job-name', LINES_OF)
            assert sorted(n for n, _ in names) == sorted(j["job_name"] for j in created["collectors"])
            assert [n for n, lines in names if lines != 1] == [], "job names broken over lines"
            card = page.locator(f'[data-batch-id="{created["batch_id"]}"]').first
            await card.screenshot(path=str(screenshot_dir / f"console-job-names-390-{view}.png"))
    finally:
        await context.close()
        await api_post(server, f"/api/collectors/runs/batch/{created['batch_id']}/cancel", None)


async def test_a_long_open_tab_forgets_old_finished_runs(live_server: ServerFactory, page: Any) -> None:
    server = await live_server(run_collectors=False)
    await enable_debug(page)
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    keep = await page.evaluate("() => window.collectorHubConsole.keepFinished")
    ids = []
    for _ in range(keep + 5):
        batch_id = (await api_post(server, "/api/collectors/run", {"collectors": ["demo"]}))["batch_id"]
        await api_post(server, f"/api/collectors/runs/batch/{batch_id}/cancel", None)
        ids.append(batch_id)
    # States arrive in order: once the last one is in, every earlier one came before it.
    await page.wait_for_function(
        "id => window.collectorHubConsole.batches.get(id)?.status === 'cancelled'",
        arg=ids[-1],
        timeout=TIMEOUT_MS,
        polling=POLL_MS,
    )
    # The console forgets old finished runs in the animation frame after one ends (live.js,
    # pruneFinished); the frame already asked for runs before one asked for after it.
    await page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    # Finished ones only: a run an earlier test left behind may still be queued.
    kept = await page.evaluate(
        """async () => {
            const { isTerminal } = await import("/static/collector-hub-client.js");
            const batches = [...window.collectorHubConsole.batches.values()];
            return batches.filter(b => isTerminal(b.status)).map(b => b.batch_id);
        }"""
    )
    assert len(kept) <= keep
    assert set(ids[-keep:]) <= set(kept)  # the newest ones are kept


async def test_a_collectors_link_survives_its_rows_redraws(live_server: ServerFactory, page: Any) -> None:
    """A collector's row is redrawn when its last run or its figures change; its link is not
    replaced then, since a press on a link that is replaced before the release is no click (the
    console test that follows a run to its collector's page lost its click this way)."""
    server = await live_server()
    await page.goto(url_of(server))
    await wait_live(page, "websocket")
    link = await page.wait_for_selector('#collectors a[href="/collectors/demo"]', timeout=TIMEOUT_MS)
    batch_id = await start_from_overview(page, "demo")
    await page.wait_for_selector(
        '#collectors tr[data-collector="demo"] .status[data-status="completed"]', timeout=TIMEOUT_MS
    )
    assert await link.evaluate("a => a.isConnected"), "the row's redraw replaced the collector's link"
    assert (await api_get(server, f"/api/collectors/runs/batch/{batch_id}"))["status"] == "completed"
    await link.click()
    await page.wait_for_url("**/collectors/demo")
