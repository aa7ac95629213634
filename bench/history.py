"""Searchable history at scale: fills the database with 1,000,000 jobs (250,000 batches of 4,
over 90 days, 20 collectors, one of them rare) and prints the p50/p99 latency of each query
shape of GET /api/collectors/history, /batches and /stats, through a real `collector-hub
serve` process (validation, SQL, JSON: the whole request). The goal is every history and
batches filter under 50 ms.

    python bench/history.py [--jobs 1000000] [--samples 200]

Uses COLLECTOR_HUB_DATABASE_URL if set (the bench empties its run tables!), else an embedded
PostgreSQL of its own. The fill skips triggers (session_replication_role = replica), so it
needs a superuser. Results are also written to bench/results/history.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import urllib.parse
from pathlib import Path

import aiohttp
import harness
import psycopg2

COLLECTORS = ["demo", "ninja", "threatlocker", *(f"s{n:02d}" for n in range(16)), "rarely"]
GOAL_MS = 50.0

FILL = """
SET session_replication_role = replica;  -- no triggers: a bulk load of finished history
TRUNCATE job_batches, job_runs, job_logs, job_finish_metrics CASCADE;
INSERT INTO job_batches (batch_id, status, priority, progress_percent, message, started_at, updated_at, ended_at, seq)
SELECT 'bc_' || lpad(b::text, 8, '0'),
       CASE WHEN b < 20 THEN 'running' WHEN b %% 16 = 0 THEN 'failed' WHEN b %% 33 = 0 THEN 'cancelled'
            ELSE 'completed' END,
       'normal', 100, 'bench', ts, ts + interval '5 minutes', CASE WHEN b >= 20 THEN ts + interval '5 minutes' END,
       nextval('collector_hub_seq')
  FROM (SELECT b, now() - make_interval(secs => b * %(spacing)s) AS ts
          FROM generate_series(0, %(batches)s - 1) b) g;
INSERT INTO job_runs (job_id, batch_id, collector, job_name, position, status, priority, progress_percent, message,
                      error, started_at, run_started_at, updated_at, ended_at, seq)
SELECT left(c, 2) || '_' || lpad((b * 4 + k)::text, 8, '0'),
       'bc_' || lpad(b::text, 8, '0'), c, c || '-collector', k,
       CASE WHEN b < 20 THEN 'running' WHEN (b * 4 + k) %% 17 = 0 THEN 'failed'
            WHEN (b * 4 + k) %% 31 = 0 THEN 'cancelled' ELSE 'completed' END,
       'normal', 100, 'bench',
       CASE WHEN (b * 4 + k) %% 17 = 0 THEN 'Exited with code 1' END,
       ts, ts + make_interval(secs => (b %% 7)), ts + interval '5 minutes',
       CASE WHEN b >= 20 THEN ts + make_interval(secs => 30 + (b * 4 + k) %% 600) END,
       nextval('collector_hub_seq')
  FROM (SELECT b, now() - make_interval(secs => b * %(spacing)s) AS ts FROM generate_series(0, %(batches)s - 1) b) g
 CROSS JOIN generate_series(0, 3) k
 CROSS JOIN LATERAL (SELECT CASE WHEN k = 3 AND b %% 1000 = 0 THEN 'rarely'
                                 ELSE (%(names)s::text[])[1 + (b * 3 + k * 7) %% %(common)s] END AS c) n;
SET session_replication_role = origin;
"""


def fill(dsn: str, jobs: int) -> float:
    batches = jobs // 4
    started = time.perf_counter()
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                FILL,
                {
                    "batches": batches,
                    "spacing": 90 * 24 * 3600 / batches,
                    "names": COLLECTORS[:-1],
                    "common": len(COLLECTORS) - 1,
                },
            )
            cur.execute("VACUUM ANALYZE job_runs")
            cur.execute("VACUUM ANALYZE job_batches")
            cur.execute("SELECT count(*) FROM job_runs")
            count = cur.fetchone()[0]
    finally:
        conn.close()
    print(f"filled {count:,} jobs in {batches:,} batches in {time.perf_counter() - started:.0f} s")
    return float(count)


def shapes(batches: int) -> list[tuple[str, str, list[dict[str, str]]]]:
    """(name, path, a list of query variants to cycle through)."""
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))
    next_day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 29 * 86400))
    some_batches = [f"bc_{random.randrange(batches):08d}" for _ in range(50)]
    common = COLLECTORS[:-1]
    history = "/api/collectors/history"
    batch_list = "/api/collectors/batches"
    return [
        ("history: newest page", history, [{"limit": "50"}]),
        ("history: deep page (cursor)", history, [{"limit": "50", "cursor": "DEEP"}]),
        ("history: one collector", history, [{"collectors": c, "limit": "50"} for c in common]),
        ("history: the rare collector", history, [{"collectors": "rarely", "limit": "50"}]),
        ("history: three collectors", history, [{"collectors": ",".join(random.sample(common, 3)), "limit": "50"}
                                                for _ in range(20)]),
        ("history: status=failed", history, [{"status": "failed", "limit": "50"}]),
        ("history: status=failed,cancelled", history, [{"status": "failed,cancelled", "limit": "50"}]),
        ("history: collector + status", history, [{"collectors": c, "status": "failed", "limit": "50"}
                                                  for c in common]),
        ("history: rare collector + status", history, [{"collectors": "rarely", "status": "cancelled", "limit": "50"}]),
        ("history: one day (since/until)", history, [{"since": day, "until": next_day, "limit": "50"}]),
        ("history: batch_id", history, [{"batch_id": b} for b in some_batches]),
        ("history: all filters", history, [{"collectors": "ninja,demo", "status": "failed,cancelled", "since": day,
                                            "limit": "50"}]),
        ("batches: newest page", batch_list, [{"limit": "50"}]),
        ("batches: status=failed", batch_list, [{"status": "failed", "limit": "50"}]),
        ("batches: one collector", batch_list, [{"collectors": c, "limit": "50"} for c in common]),
        ("batches: the rare collector", batch_list, [{"collectors": "rarely", "limit": "50"}]),
        ("stats: window=24h", "/api/collectors/stats", [{"window": "24h"}]),
        ("stats: window=7d", "/api/collectors/stats", [{"window": "7d"}]),
        ("stats: window=90d", "/api/collectors/stats", [{"window": "90d"}]),
    ]  # fmt: skip


async def deep_cursor(session: aiohttp.ClientSession, base: str) -> str:
    """The cursor of a page half-way down: follow a few big pages, then take its cursor."""
    cursor = ""
    for _ in range(20):
        query = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        async with session.get(f"{base}/api/collectors/history?{urllib.parse.urlencode(query)}") as resp:
            cursor = (await resp.json())["next_cursor"]
    return cursor


async def timed(
    session: aiohttp.ClientSession, base: str, path: str, variants: list[dict[str, str]], samples: int, deep: str = ""
) -> dict[str, float]:
    """p50/p99 of ``samples`` requests cycling through ``variants`` (after 3 that warm caches)."""
    timings = []
    for i in range(samples + 3):
        query = {k: (deep if v == "DEEP" else v) for k, v in variants[i % len(variants)].items()}
        url = f"{base}{path}?{urllib.parse.urlencode(query)}"
        started = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
            assert resp.status == 200, (url, resp.status)
        if i >= 3:
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "samples": len(timings)}


async def measure(base: str, samples: int, batches: int) -> list[dict[str, object]]:
    results = []
    async with aiohttp.ClientSession() as session:
        deep = await deep_cursor(session, base)
        for name, path, variants in shapes(batches):
            stats_samples = samples if not path.endswith("stats") else max(5, samples // 20)
            figures = await timed(session, base, path, variants, stats_samples, deep)
            results.append({"shape": name, **figures})
            goal = "" if path.endswith("stats") else ("ok" if figures["p99_ms"] < GOAL_MS else "OVER 50 ms")
            print(f"{name:<36} p50 {figures['p50_ms']:8.2f} ms   p99 {figures['p99_ms']:8.2f} ms   {goal}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with harness.database() as dsn:
        count = fill(dsn, args.jobs)
        with harness.served(dsn) as (base, _):
            results = asyncio.run(measure(base, args.samples, args.jobs // 4))
    out = Path(__file__).parent / "results" / "history.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"jobs": count, "goal_ms": GOAL_MS, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
