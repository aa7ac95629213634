"""GET /api/collectors/stats at 1,000,000 jobs, measured from outside: p50/p99 of the request
for windows of 24 hours, 7, 30 and 90 days (and 48 and 49 hours: the longest hourly series and
the shortest daily one), through a real `collector-hub serve` process on 127.0.0.1, each window
``--repeat`` times; the goal is p99 under 100 ms for any window.

    python bench/stats.py [--jobs 1000000] [--samples 30] [--repeat 3] [--compare /work/main]

The database is filled as bench/history.py fills it (generate_series in SQL, triggers off: a
bulk import), in an embedded PostgreSQL of the bench's own that is deleted afterwards (or
COLLECTOR_HUB_DATABASE_URL, whose run tables it empties; ``--reuse`` takes them as they are).
The first request of the longest window is timed on its own: on a hub with summaries (sql/014)
it is the one that makes them.

Each repetition prints the load average (1 minute) beside its figures, and the CPU time per
request of the serve process and of the embedded PostgreSQL (all its processes; not measured
on COLLECTOR_HUB_DATABASE_URL): on a shared, loaded machine the CPU time moves much less than
the latency. ``--compare PATH`` measures another checkout (e.g. main, for a "before") on the
same database, alternating repetitions with this one, and prints the ratios (this / PATH) of
p50, p99 and CPU per window, pair by pair: a before/after in one run, at the same load.
BENCH_PROJECT_ROOT measures another checkout alone. Results also go to bench/results/stats.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import harness
import history

GOAL_MS = 100.0
WINDOWS = ["24h", "48h", "49h", "7d", "30d", "90d"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (those still running)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def postgres_pids(dsn: str) -> list[int]:
    """The embedded PostgreSQL's processes (its postmaster and children), found from the socket
    directory the DSN names, which is its data directory; none for another server."""
    host = urllib.parse.parse_qs(urllib.parse.urlsplit(dsn).query).get("host", [""])[0]
    try:
        postmaster = int((Path(host) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return [postmaster, *children]


async def first_request(base: str) -> float:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.get(f"{base}/api/collectors/stats?window=90d") as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        return (time.perf_counter() - started) * 1000


async def repetition(base: str, samples: int, pids: tuple[int, str]) -> list[dict[str, Any]]:
    serve, dsn = pids
    out = []
    async with aiohttp.ClientSession() as session:
        path = "/api/collectors/stats"
        for window in WINDOWS:
            database = postgres_pids(dsn)
            serve_cpu, database_cpu = cpu_seconds([serve]), cpu_seconds(database)
            figures = await history.timed(session, base, path, [{"window": window}], samples)
            count = samples + 3  # history.timed's warm-up requests are counted too
            out.append(
                {
                    "window": window,
                    **figures,
                    "serve_cpu_ms": round((cpu_seconds([serve]) - serve_cpu) * 1000 / count, 2),
                    "postgres_cpu_ms": round((cpu_seconds(database) - database_cpu) * 1000 / count, 2)
                    if database
                    else None,
                }
            )
    return out


def measure(root: Path, dsn: str, samples: int) -> tuple[float, list[dict[str, Any]]]:
    """One repetition of every window against a serve process of the checkout at ``root``."""
    harness.ROOT = root  # harness.served starts `python -m server` in this directory
    with harness.served(dsn) as (base, server):
        first = asyncio.run(first_request(base))
        return first, asyncio.run(repetition(base, samples, (server.pid, dsn)))


def show(label: str, n: int, load: float, results: list[dict[str, Any]]) -> None:
    for r in results:
        goal = "ok" if float(r["p99_ms"]) <= GOAL_MS else "OVER 100 ms"
        cpu = f"serve {r['serve_cpu_ms']:6.2f} ms"
        if r["postgres_cpu_ms"] is not None:
            cpu += f" + postgres {r['postgres_cpu_ms']:6.2f} ms"
        print(
            f"{label:<6} #{n + 1} window={r['window']:<4} p50 {r['p50_ms']:8.2f} ms   p99 {r['p99_ms']:8.2f} ms"
            f"   {goal:<11}  CPU/request: {cpu}   (load average {load})",
            flush=True,
        )


def cpu(r: dict[str, Any]) -> float:
    return float(r["serve_cpu_ms"]) + float(r["postgres_cpu_ms"] or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another checkout to measure, alternating with this one")
    parser.add_argument("--reuse", action="store_true", help="COLLECTOR_HUB_DATABASE_URL as an earlier run filled it")
    args = parser.parse_args()
    roots = {"this": harness.ROOT, **({"other": args.compare.resolve()} if args.compare else {})}
    for label, root in roots.items():
        print(f"{label}: {root}")
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in roots}
    with harness.database() as dsn:
        if not args.reuse:
            history.fill(dsn, args.jobs)
        for n in range(args.repeat):
            for label, root in roots.items():
                first, results = measure(root, dsn, args.samples)
                load = round(os.getloadavg()[0], 1)
                if n == 0:
                    print(f"{label:<6} first request, 90d: {first:.0f} ms (load average {load})")
                runs[label].append({"repetition": n + 1, "load_average": load, "results": results})
                show(label, n, load, results)
    print("ranges over the repetitions:")
    for label, done in runs.items():
        loads = [float(run["load_average"]) for run in done]
        for i, window in enumerate(WINDOWS):
            rows = [run["results"][i] for run in done]
            p50s, p99s, cpus = (
                [float(r["p50_ms"]) for r in rows],
                [float(r["p99_ms"]) for r in rows],
                list(map(cpu, rows)),
            )
            print(
                f"  {label:<6} window={window:<4} p50 {min(p50s):.1f}-{max(p50s):.1f} ms,"
                f" p99 {min(p99s):.1f}-{max(p99s):.1f} ms, CPU {min(cpus):.1f}-{max(cpus):.1f} ms/request"
                f" (load average {min(loads)}-{max(loads)})"
            )
    if args.compare:
        print("this / other, each repetition's pair:")
        for i, window in enumerate(WINDOWS):
            pairs = [(a["results"][i], b["results"][i]) for a, b in zip(runs["this"], runs["other"], strict=True)]
            ratios = {
                name: [float(a[key]) / float(b[key]) for a, b in pairs]
                for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"))
            }
            ratios["CPU"] = [cpu(a) / cpu(b) for a, b in pairs]
            print(
                f"  window={window:<4} " + ", ".join(f"{name} {min(v):.2f}-{max(v):.2f}" for name, v in ratios.items())
            )
    out = Path(__file__).parent / "results" / "stats.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"jobs": args.jobs, "goal_ms": GOAL_MS, "roots": {k: str(v) for k, v in roots.items()},
                               "runs": runs}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
