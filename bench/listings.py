"""History and batch listings at 1,000,000 jobs, measured from outside: p50/p99 of every query
shape of GET /api/collectors/history and /batches (bench/history.py's shapes: filters,
cursors, the rare collector), through a real `collector-hub serve` process on 127.0.0.1, each
shape measured ``--repeat`` times; the goal is p99 under 50 ms for each.

    python bench/listings.py [--jobs 1000000] [--samples 200] [--repeat 3]

The database is filled as bench/history.py fills it (generate_series, triggers off), in an
embedded PostgreSQL of the bench's own that is deleted afterwards (or COLLECTOR_HUB_DATABASE_URL,
whose run tables it empties; ``--reuse`` takes them as an earlier run of this or bench/stats.py
filled them). Each repetition prints the load average (1 minute) beside its
figures; the machine is shared, so compare rows taken at a similar load. Results also go to
bench/results/listings.json.
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


async def repetition(base: str, samples: int, batches: int) -> list[dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        deep = await history.deep_cursor(session, base)
        out = []
        for name, path, variants in history.shapes(batches):
            if path.endswith("stats"):
                continue
            out.append({"shape": name, **await history.timed(session, base, path, variants, samples, deep)})
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="COLLECTOR_HUB_DATABASE_URL as an earlier run filled it")
    args = parser.parse_args()
    runs = []
    with harness.database() as dsn:
        if not args.reuse:
            history.fill(dsn, args.jobs)
        with harness.served(dsn) as (base, _):
            for n in range(args.repeat):
                started = time.strftime("%H:%M:%S")
                results = asyncio.run(repetition(base, args.samples, args.jobs // 4))
                load = round(os.getloadavg()[0], 1)
                runs.append({"repetition": n + 1, "load_average": load, "results": results})
                print(f"repetition {n + 1} (from {started} UTC, load average {load} at its end):")
                for r in results:
                    goal = "ok" if float(r["p99_ms"]) < history.GOAL_MS else "OVER 50 ms"  # type: ignore[arg-type]
                    print(f"  {r['shape']:<36} p50 {r['p50_ms']:8.2f} ms   p99 {r['p99_ms']:8.2f} ms   {goal}")
    print("p99 range over the repetitions:")
    for i, r in enumerate(runs[0]["results"]):  # type: ignore[arg-type]
        p99s = [float(run["results"][i]["p99_ms"]) for run in runs]  # type: ignore[index]
        print(f"  {r['shape']:<36} {min(p99s):8.2f}-{max(p99s):.2f} ms")
    out = Path(__file__).parent / "results" / "listings.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"jobs": args.jobs, "goal_ms": history.GOAL_MS, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
