"""How cheap is polling? Requests per second, latency and database transactions per request
for the REST reads legacy clients poll, against a real `collector-hub serve` process.

    python bench/polling.py [--requests 3000] [--concurrency 50]

Uses COLLECTOR_HUB_DATABASE_URL if set (a database the bench may write to), else starts an
embedded PostgreSQL of its own. Client and server share this machine, so compare the rows of
one run with each other (ratios), not with another machine's figures. Results are also written
to bench/results/polling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
import harness
import psycopg2


def transactions(dsn: str) -> int:
    """Committed transactions on this database so far, as PostgreSQL's statistics say."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        return int(cur.fetchone()[0])


async def settled_transactions(dsn: str) -> int:
    """Backends report statistics when idle, within seconds: wait until the count is stable
    (our own probe adds one transaction each time, which is subtracted)."""
    last = await asyncio.to_thread(transactions, dsn)
    for _ in range(30):
        await asyncio.sleep(1)
        now = await asyncio.to_thread(transactions, dsn)
        if now - last <= 1:
            return now
        last = now
    return last


async def load(
    url: str, headers: dict[str, str], requests: int, concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for _ in queue:
                began = time.perf_counter()
                async with http.get(url, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return elapsed, latencies, statuses


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    with harness.database() as dsn, harness.served(dsn) as (base, _):
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/api/collectors/run", json={"collectors": ["demo", "ninja"]}) as resp:
                created = await resp.json()
            job_id = created["collectors"][0]["job_id"]
            progress = {"status": "running", "progress_percent": 40, "message": "Processing page 4/10"}
            async with http.post(f"{base}/api/collectors/runs/job/{job_id}/progress", json=progress) as resp:
                assert resp.status == 200
            batch_path = f"/api/collectors/runs/batch/{created['batch_id']}"
            async with http.get(base + batch_path) as resp:
                etag = resp.headers["ETag"]

        scenarios = [
            ("GET batch (200, full body)", batch_path, {}),
            ("GET batch If-None-Match (304)", batch_path, {"If-None-Match": etag}),
            ("GET job (200)", f"/api/collectors/runs/job/{job_id}", {}),
            ("GET latest (200)", "/api/collectors/runs/latest?collectors=demo,ninja", {}),
        ]
        rows = []
        for name, path, headers in scenarios:
            await load(base + path, headers, min(200, args.requests), args.concurrency)  # warm up
            before = await settled_transactions(dsn)
            elapsed, latencies, statuses = await load(base + path, headers, args.requests, args.concurrency)
            after = await settled_transactions(dsn)
            latencies.sort()
            rows.append({
                "scenario": name,
                "requests_per_second": round(args.requests / elapsed),
                "p50_ms": round(statistics.median(latencies) * 1000, 2),
                "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
                "db_transactions_per_request": round((after - before) / args.requests, 3),
                "statuses": statuses,
            })  # fmt: skip
    print(f"\n{args.requests} requests per scenario, {args.concurrency} concurrent, client and server on one machine\n")
    print(f"{'scenario':<32} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'db tx/req':>10}  statuses")
    for row in rows:
        print(
            f"{row['scenario']:<32} {row['requests_per_second']:>7} {row['p50_ms']:>8} {row['p99_ms']:>8}"
            f" {row['db_transactions_per_request']:>10}  {row['statuses']}"
        )
    base_rate = rows[0]["requests_per_second"]
    print("\nratio to the full GET batch: " + ", ".join(
        f"{row['scenario'].split(' (')[0]} {row['requests_per_second'] / base_rate:.2f}x" for row in rows[1:]
    ))  # fmt: skip
    out = harness.ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "polling.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
