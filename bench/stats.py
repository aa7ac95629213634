"""GET /api/collectors/stats at 1,000,000 jobs, measured from outside: p50/p99 of the request
for windows of 7, 30 and 90 days (and 24 hours), through a real `collector-hub serve` process
on 127.0.0.1, each window ``--repeat`` times; the goal is p99 under 100 ms for any window.

    python bench/stats.py [--jobs 1000000] [--samples 30] [--repeat 3]

The database is filled as bench/history.py fills it (generate_series in SQL, triggers off: a
bulk import), in an embedded PostgreSQL of the bench's own that is deleted afterwards (or
COLLECTOR_HUB_DATABASE_URL, whose run tables it empties). The first request of the longest
window is timed on its own: on a hub with summaries (sql/014) it is the one that makes them.
Each repetition prints the load average (1 minute) beside its figures; the machine is shared,
so compare rows taken at a similar load. BENCH_PROJECT_ROOT measures another checkout (e.g.
main, for a "before") with this bench. Results also go to bench/results/stats.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import harness
import history

GOAL_MS = 100.0
WINDOWS = ["24h", "7d", "30d", "90d"]


async def first_request(base: str) -> float:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.get(f"{base}/api/collectors/stats?window=90d") as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        return (time.perf_counter() - started) * 1000


async def repetition(base: str, samples: int) -> list[dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        path = "/api/collectors/stats"
        return [{"window": w, **await history.timed(session, base, path, [{"window": w}], samples)} for w in WINDOWS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"measuring {harness.ROOT}")
    runs = []
    with harness.database() as dsn:
        history.fill(dsn, args.jobs)
        with harness.served(dsn) as (base, _):
            first = asyncio.run(first_request(base))
            print(f"first request, 90d: {first:.0f} ms (load average {os.getloadavg()[0]:.1f})")
            for n in range(args.repeat):
                results = asyncio.run(repetition(base, args.samples))
                load = round(os.getloadavg()[0], 1)
                runs.append({"repetition": n + 1, "load_average": load, "results": results})
                for r in results:
                    goal = "ok" if float(r["p99_ms"]) <= GOAL_MS else "OVER 100 ms"  # type: ignore[arg-type]
                    print(
                        f"#{n + 1} window={r['window']:<4} p50 {r['p50_ms']:8.2f} ms   p99 {r['p99_ms']:8.2f} ms"
                        f"   {goal}   (load average {load})",
                        flush=True,
                    )
    print("ranges over the repetitions:")
    for i, window in enumerate(WINDOWS):
        p50s = [float(run["results"][i]["p50_ms"]) for run in runs]  # type: ignore[index]
        p99s = [float(run["results"][i]["p99_ms"]) for run in runs]  # type: ignore[index]
        loads = [float(run["load_average"]) for run in runs]  # type: ignore[arg-type]
        print(
            f"  window={window:<4} p50 {min(p50s):.1f}-{max(p50s):.1f} ms, p99 {min(p99s):.1f}-{max(p99s):.1f} ms"
            f" (load average {min(loads)}-{max(loads)})"
        )
    out = Path(__file__).parent / "results" / "stats.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"jobs": args.jobs, "first_ms": first, "goal_ms": GOAL_MS, "runs": runs}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
