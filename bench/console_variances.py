"""The console's Variances view with about 5,000 open variances, in Chromium: does it scroll,
filter and take live changes without a main-thread task over 50 ms?

Fills an inventory the way bench/variances.py does (its _FILL: most devices agree, about 104
variances per 1,000 devices, in 50 organizations), runs the real checks once, starts a
`collector-hub serve` (no runner) and opens /variances in Debian's Chromium. A
PerformanceObserver in the page records every long task (the browser reports each task over
50 ms). Then, each phase timed apart:

- load: the page opens and reads every open variance (1,000 a request) and draws the first rows;
- scroll: the window is scrolled from top to bottom in wheel steps, then "Next" is pressed and
  the next page of 50 rows scrolled through, up to the twentieth (1,000 rows seen);
- filter: text typed into the filter a key at a time, a type chosen, an organization chosen,
  then everything cleared;
- live: 500 variances resolved through the API (bulk-update, 100 at a time) while the page is
  open; the page takes each change from the stream.

For each phase it prints the long tasks (count, longest, in wall time as the page sees them),
the view's own drawing time (debug mode), Chromium's script, style, layout and total task time,
and, from a trace of the phase, the main thread's longest task in CPU time: the page's own work,
which a machine busy with other things does not stretch. The goal: no task over 50 ms while
scrolling, filtering and taking changes live.

    .venv/bin/python bench/console_variances.py [--devices 48100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import database, served
from variances import _FILL

from collectors.variance_checks import run_checks
from collectors.variance_settings import VarianceSettings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LONG_TASK_MS = 50
# Every long task the page runs, from before its first script on.
OBSERVE_LONG_TASKS = """
try { sessionStorage.setItem('collector-hub-debug', '1'); } catch (e) {}
window.longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.longTasks.push(entry.duration);
}).observe({ type: 'longtask', buffered: true });
"""
ROWS = "#variances tbody tr[data-id]"


def post(base: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=60) as resp:
        return json.loads(resp.read())


def main_thread_events(trace: bytes) -> list[dict[str, Any]]:
    """The complete ("X") events of the page's main thread, in time order."""
    events = json.loads(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    return sorted(
        (e for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) in main and "dur" in e),
        key=lambda e: (e["ts"], -e["dur"]),
    )


KINDS = {  # trace event -> what the breakdown calls it
    "FunctionCall": "script",
    "EvaluateScript": "script",
    "v8.compile": "compile",
    "UpdateLayoutTree": "style",
    "Layout": "layout",
    "PrePaint": "paint",
    "Paint": "paint",
    "Layerize": "paint",
    "MinorGC": "gc",
    "MajorGC": "gc",
    "HitTest": "hit test",
}


def longest_cpu_task(events: list[dict[str, Any]]) -> tuple[float, str]:
    """The longest task of the page's main thread in CPU time (ms): its own work, whatever else
    the machine runs (a task's wall time also counts the time it waited for a core); and what
    it did, in CPU ms: the script by function (draw, apply...), style recalculation (with the
    elements it styled), layout (with the objects it laid out), paint and garbage collection,
    the kinds a fix aims at."""
    tasks = [e for e in events if e["name"] == "RunTask"]
    if not tasks:
        return 0.0, ""
    task = max(tasks, key=lambda e: e.get("tdur", 0))
    end = task["ts"] + task["dur"]
    parts: dict[str, float] = {}
    sizes: dict[str, int] = {}
    open_until: dict[str, int] = {}  # a kind's outermost event so far: nested ones are inside it
    for e in events:
        kind = KINDS.get(e["name"])
        if not kind or not (task["ts"] <= e["ts"] and e["ts"] + e["dur"] <= end):
            continue
        if kind == "script":
            data = e.get("args", {}).get("data", {})
            kind = f"{data.get('functionName') or data.get('url', '').rsplit('/', 1)[-1] or 'script'}()"
        if e["ts"] < open_until.get(kind, 0):
            continue
        open_until[kind] = e["ts"] + e["dur"]
        parts[kind] = parts.get(kind, 0.0) + e.get("tdur", 0) / 1000
        args = e.get("args", {})
        size = args.get("elementCount") or args.get("beginData", {}).get("dirtyObjects")
        if size:
            sizes[kind] = sizes.get(kind, 0) + int(size)
    said = []
    for kind, ms in sorted(parts.items(), key=lambda kv: -kv[1]):
        if ms >= 0.5:
            size = f" ({sizes[kind]} {'elements' if kind == 'style' else 'objects'})" if kind in sizes else ""
            said.append(f"{kind} {ms:.0f}{size}")
    return task.get("tdur", 0) / 1000, ", ".join(said)


def top_functions(profile: dict[str, Any], n: int = 8) -> str:
    """The page's script functions with the most self time in a CPU profile (sampled, ms)."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    spent: dict[str, float] = {}
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = nodes[sample]["callFrame"]
        if not frame["url"] and frame["functionName"] in ("(idle)", "(program)", "(root)"):
            continue
        where = f"{frame['functionName'] or '(anonymous)'} {frame['url'].rsplit('/', 1)[-1]}:{frame['lineNumber'] + 1}"
        spent[where] = spent.get(where, 0.0) + delta / 1000
    return ", ".join(f"{where} {ms:.0f}" for where, ms in sorted(spent.items(), key=lambda kv: -kv[1])[:n])


class Phases:
    """Long tasks and the view's drawing time, phase by phase."""

    def __init__(self, page: Any, traces: Path | None, profile: bool = False) -> None:
        self.page = page
        self.traces = traces
        self.profile = profile
        self.profiles: dict[str, str] = {}
        self.browser = page.context.browser
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Performance.enable")
        if profile:
            self.cdp.send("Profiler.enable")
            self.cdp.send("Profiler.setSamplingInterval", {"interval": 200})
        self.results: list[tuple[str, float, list[float], float, dict[str, float]]] = []
        self.breakdowns: dict[str, str] = {}
        self.tracing = False
        self._start()

    def _metrics(self) -> dict[str, float]:
        return {m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]}

    def _start(self) -> None:
        if not self.tracing:
            self.browser.start_tracing(page=self.page, categories=["disabled-by-default-devtools.timeline"])
            self.tracing = True
        if self.profile:
            self.cdp.send("Profiler.start")
        self.started = time.perf_counter()
        self.before = self._metrics()
        self.page.evaluate("() => { window.longTasks.length = 0; window.collectorHubConsole.stats.renderMs = 0; }")

    def end(self, name: str) -> None:
        seconds = time.perf_counter() - self.started
        tasks = self.page.evaluate("() => [...window.longTasks]")
        drawing = self.page.evaluate("() => window.collectorHubConsole.stats.renderMs")
        after = self._metrics()
        if self.profile:
            self.profiles[name] = top_functions(self.cdp.send("Profiler.stop")["profile"])
        self.tracing = False
        trace = self.browser.stop_tracing()
        if self.traces:
            (self.traces / f"{name}.json").write_bytes(trace)
        cpu, self.breakdowns[name] = longest_cpu_task(main_thread_events(trace))
        # Chromium's own count of the main thread's time, by kind (ms in the phase).
        spent = {
            kind: (after[metric] - self.before[metric]) * 1000
            for kind, metric in (
                ("script", "ScriptDuration"),
                ("style", "RecalcStyleDuration"),
                ("layout", "LayoutDuration"),
                ("tasks", "TaskDuration"),
            )
        }
        spent["longest_cpu"] = cpu
        self.results.append((name, seconds, tasks, drawing, spent))
        self._start()


def measure(base: str, open_count: int, traces: Path | None, profile: bool) -> Phases:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(OBSERVE_LONG_TASKS)
        page.goto(base + "/")
        page.wait_for_selector('#connection[data-state="live"]', timeout=30_000)
        phases = Phases(page, traces, profile)
        page.click('nav a[href="/variances"]')
        page.wait_for_selector(f"#variances-shown:has-text('of {open_count:,} matching')", timeout=120_000)
        page.wait_for_selector('#variances-live[data-state="connected"]', timeout=30_000)
        page.wait_for_timeout(500)  # the trend chart and the last frames
        phases.end("load")

        def scroll_through() -> None:
            height = page.evaluate("() => document.documentElement.scrollHeight")
            for _ in range(0, height, 300):
                page.mouse.wheel(0, 300)
                page.wait_for_timeout(30)
            page.evaluate("() => window.scrollTo(0, 0)")

        page.mouse.move(640, 450)
        scroll_through()
        for n in range(2, 21):  # pages 2 to 20 (1,000 rows), each scrolled through
            page.click("#next-variances")
            page.wait_for_selector(f"#variances-shown:has-text('Showing {(n - 1) * 50 + 1:,} to')", timeout=30_000)
            scroll_through()
        phases.end("scroll")

        page.click("#variance-q")
        page.keyboard.type("ws-12", delay=120)
        page.wait_for_timeout(300)
        page.fill("#variance-q", "")
        page.keyboard.type("org 7", delay=120)
        page.wait_for_timeout(300)
        page.fill("#variance-q", "")
        page.select_option("#variance-type", "DISPLAY_NAME_MISMATCH")
        page.wait_for_timeout(300)
        organization = page.eval_on_selector(
            "#variance-organization", "s => s.options[Math.min(7, s.options.length - 1)].value"
        )
        page.select_option("#variance-organization", organization)
        page.wait_for_timeout(300)
        page.select_option("#variance-type", "")
        page.select_option("#variance-organization", "")
        page.wait_for_selector(f"#variances-shown:has-text('of {open_count:,} matching')", timeout=30_000)
        phases.end("filter")

        open_ids = [v["id"] for v in get(base, "/api/exceptions?status=active&limit=500")]
        for i in range(0, len(open_ids), 100):
            post(base, "/api/exceptions/bulk-update", {"exception_ids": open_ids[i : i + 100], "action": "resolve"})
        left = open_count - len(open_ids)
        page.wait_for_selector(f"#variances-shown:has-text('of {left:,} matching')", timeout=60_000)
        page.wait_for_timeout(300)
        phases.end("live")
        browser.stop_tracing()
        browser.close()
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--devices", type=int, default=48_100, help="devices per source (48,100: about 5,000 variances)"
    )
    parser.add_argument("--traces", type=Path, help="a folder to write each phase's trace to (load.json...)")
    parser.add_argument(
        "--profile", action="store_true", help="also a CPU profile per phase: the script's costliest functions"
    )
    args = parser.parse_args()
    if args.traces:
        args.traces.mkdir(parents=True, exist_ok=True)
    with database() as dsn:
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(_FILL, {"n": args.devices})
            result = run_checks(conn, VarianceSettings())
            print(f"checks: {result.message()}", flush=True)
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM variances WHERE status = 'active'")
                (open_count,) = cur.fetchone()
        finally:
            conn.close()
        with served(dsn) as (base, _server):
            phases = measure(base, open_count, args.traces, args.profile)
    results = phases.results
    one, five, _ = os.getloadavg()
    print(f"\nVariances view, {open_count:,} open variances, Chromium 1280x900; load {one:.1f}/{five:.1f}\n")
    print(
        f"{'phase':<8} {'seconds':>8} {'long tasks':>11} {'longest ms':>11} {'view drawing ms':>16}"
        f" {'script ms':>10} {'style ms':>9} {'layout ms':>10} {'all tasks ms':>13} {'longest CPU ms':>15}"
    )
    worst = worst_cpu = 0.0
    for name, seconds, tasks, drawing, spent in results:
        longest = max(tasks, default=0.0)
        if name != "load":
            worst = max(worst, longest)
            worst_cpu = max(worst_cpu, spent["longest_cpu"])
        print(
            f"{name:<8} {seconds:>8.1f} {len(tasks):>11} {longest:>11.0f} {drawing:>16.0f} {spent['script']:>10.0f}"
            f" {spent['style']:>9.0f} {spent['layout']:>10.0f} {spent['tasks']:>13.0f} {spent['longest_cpu']:>15.0f}"
        )
    print("\nthe longest task (CPU) of each phase, by kind (CPU ms):")
    for name, breakdown in phases.breakdowns.items():
        print(f"  {name}: {breakdown}")
    for name, functions in phases.profiles.items():
        print(f"  {name}, script by self time (ms, sampled): {functions}")
    verdict = "ok" if worst <= LONG_TASK_MS else f"OVER: a task of {worst:.0f} ms"
    print(f"\nscroll, filter and live without a task over {LONG_TASK_MS} ms (wall time): {verdict}")
    cpu_verdict = "ok" if worst_cpu <= LONG_TASK_MS else f"OVER: {worst_cpu:.0f} ms"
    print(f"the same in the main thread's CPU time (the page's own work): {cpu_verdict}")
    return 0 if worst <= LONG_TASK_MS else 1


if __name__ == "__main__":
    sys.exit(main())
