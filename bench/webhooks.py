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
import contextlib
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, database, free_port, served


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


@contextlib.contextmanager
def nodes(dsn: str, count: int, poll: float) -> Iterator[list[str]]:
    """``count`` serve processes on one database (startup blocks the loop; nothing is due then)."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(served(dsn, webhook_allow_private="1", webhook_poll_interval=str(poll)))[0]
            for _ in range(count)
        ]


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
    with nodes(dsn, 1, poll) as (url,):
        async with aiohttp.ClientSession() as http:
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
    with nodes(dsn, node_count, 1.0):
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
    try:
        with database() as dsn:
            for poll in (1.0, 0.1):
                rows.append(await latency(dsn, hook_url, receiver, poll, args.batches))
            for i, node_count in enumerate((1, 2)):
                rows.append(await burst(dsn, hook_url, receiver, args.burst, node_count, 90_000_000 + i * 1_000_000))
    finally:
        await runner.cleanup()

    print(f"\nwebhook delivery, receiver and servers on one machine ({args.batches} batches per latency row)\n")
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "webhooks.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
