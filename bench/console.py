"""The console under load: 200 running jobs updating 5 times a second, drawn by Chromium.

Starts a `collector-hub serve` (no runner), creates 200 one-job batches of a collector that
never runs, opens the console's Overview in Debian's Chromium (WebSocket), and updates every
job's progress and message 5 times a second with one SQL statement per tick (each row's trigger
sends its NOTIFY, as a collector's progress does). After a warm-up (every card drawn) it
measures for --seconds and prints, from the Performance API inside the page, the time spent per
update (handling the message plus drawing it, frames included), and from Chromium's own metrics
the main thread's total task time per update. It also counts the page's HTTP requests to /api/
while measuring: on WebSocket there must be none (the page does not poll).

    .venv/bin/python bench/console.py [--jobs 200] [--rate 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import harness
import psycopg2

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def post(base: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def writer(dsn: str, rate: float, stop: threading.Event, ticks: list[int]) -> None:
    """Every job of the bench collector: new progress and message, ``rate`` times a second."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    next_at = time.monotonic()
    with conn.cursor() as cur:
        while not stop.is_set():
            ticks[0] += 1
            cur.execute(
                "UPDATE job_runs SET status = 'running', progress_percent = %s, message = %s WHERE collector = 'bench'",
                (ticks[0] % 99 + 1, f"Fetched page {ticks[0]}"),
            )
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    conn.close()


def measure(base: str, dsn: str, jobs: int, rate: float, seconds: float) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    stop = threading.Event()
    ticks = [0]
    thread = threading.Thread(target=writer, args=(dsn, rate, stop, ticks), daemon=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        api_requests: list[str] = []
        page.on("request", lambda r: api_requests.append(r.url) if "/api/" in r.url and r.method == "GET" else None)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        # The console's debug mode (static/console/debug.js): its timings and window handles.
        page.add_init_script("try { sessionStorage.setItem('collector-hub-debug', '1'); } catch (e) {}")
        page.goto(base + "/")
        page.wait_for_selector('#connection[data-state="live"]', timeout=30_000)
        thread.start()
        # Warm-up: every batch has its card (each first seen costs one GET of the batch).
        page.wait_for_function(
            f"() => document.querySelectorAll('#active-batches .batch-card').length >= {jobs}", timeout=120_000
        )
        page.evaluate(
            "() => Object.assign(window.collectorHubConsole.stats, {updates: 0, handleMs: 0, renderMs: 0, frames: 0})"
        )
        api_requests.clear()
        before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        ticks_before = ticks[0]
        page.wait_for_timeout(seconds * 1000)
        stats = page.evaluate("() => ({...window.collectorHubConsole.stats})")
        after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        ticks_done = ticks[0] - ticks_before
        transport = page.evaluate("() => window.collectorHubConsole.transport()")
        stop.set()
        thread.join(10)
        browser.close()
    updates = max(1, stats["updates"])
    task_ms = (after["TaskDuration"] - before["TaskDuration"]) * 1000
    return {
        "transport": transport,
        "offered_per_s": ticks_done * jobs / seconds,
        "received_per_s": stats["updates"] / seconds,
        "frames_per_s": stats["frames"] / seconds,
        "ms_per_update": (stats["handleMs"] + stats["renderMs"]) / updates,
        "handle_ms_per_update": stats["handleMs"] / updates,
        "render_ms_per_frame": stats["renderMs"] / max(1, stats["frames"]),
        "task_ms_per_update": task_ms / updates,
        "main_thread_busy_pct": 100 * task_ms / (seconds * 1000),
        **{
            f"{name}_ms_per_update": (after[metric] - before[metric]) * 1000 / updates
            for name, metric in (
                ("script", "ScriptDuration"),
                ("layout", "LayoutDuration"),
                ("style", "RecalcStyleDuration"),
            )
        },
        "api_gets": len(api_requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=5.0, help="updates per second per job")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ch-bench-console-") as tmp:
        collectors = Path(tmp) / "collectors.toml"
        # Never started (no runner): the bench writes the jobs' progress itself.
        collectors.write_text(f'[collectors.bench]\ncommand = ["{sys.executable}", "-c", "pass"]\njob_name = "bench"\n')
        with harness.database() as dsn, harness.served(dsn, collectors_file=str(collectors)) as (base, _server):
            for _ in range(args.jobs):
                post(base, "/api/collectors/run", {"collectors": ["bench"]})
            result = measure(base, dsn, args.jobs, args.rate, args.seconds)
    print(f"\n{args.jobs} running jobs x {args.rate:g} updates/s, Overview in Chromium, {args.seconds:g} s measured\n")
    for key, value in result.items():
        print(f"{key:<24} {value:.2f}" if isinstance(value, float) else f"{key:<24} {value}")


if __name__ == "__main__":
    main()
