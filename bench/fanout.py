"""Fanout: N WebSocket and N SSE subscribers on one batch while a collector reports 20 times
a second. Prints delivered messages per second, latency from commit to receipt (p50, p99),
the server's CPU and RSS, and server memory per idle connection.

    python bench/fanout.py                      # N = 1000 and 5000
    python bench/fanout.py --subscribers 200 --seconds 5

One `collector-hub serve` process (no runner) on an embedded PostgreSQL of the bench's own,
or on COLLECTOR_HUB_DATABASE_URL. Clients run in two other processes (one per transport): a
hundred "probe" clients per transport parse every message and time it; the rest read and
count raw bytes, so the clients cost little next to the server. Everything shares this
machine: compare rows of one run (ratios), not runs on different machines. Results also go
to bench/results/fanout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import resource
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import harness
import psycopg2

PROBES = 100
CONNECT_AT_ONCE = 200  # the listen backlog is finite; connect in waves
UPDATES_PER_SECOND = 20
TICK = os.sysconf("SC_CLK_TCK")


def family(pid: int) -> list[int]:
    """``pid`` and its descendants (``serve --workers N`` runs N children)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += family(int(child))
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants."""
    total = 0
    for member in family(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its living descendants: to the nanosecond from
    each thread's ``schedstat`` where the kernel keeps it (``stat`` counts clock ticks, 10 ms,
    too coarse for the fixed cost of a few hundred states), else from ``stat``."""
    total = 0.0
    for member in family(pid):
        precise = _schedstat_seconds(member)
        if precise is None:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            precise = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        total += precise
    return total


def _schedstat_seconds(pid: int) -> float | None:
    """The CPU time of ``pid``'s threads from their ``schedstat``; None without it."""
    nanoseconds = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            nanoseconds += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:
            if task.exists():
                return None  # a kernel without schedstat
    return nanoseconds / 1e9


# ---- clients (each transport in its own process) ----


def ws_frame(text: str) -> bytes:
    """A masked client text frame (RFC 6455 5.2)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def raw_subscriber(kind: str, port: int, batch_id: str, counts: list[int]) -> None:
    """Connect, subscribe, then read and count without parsing: a cheap client."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if kind == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"WebSocket upgrade refused: {head[:200]!r}")
        writer.write(ws_frame(json.dumps({"op": "subscribe", "batch_id": batch_id})))
        marker = b'"seq"'
    else:
        writer.write(
            f"GET /api/collectors/runs/batch/{batch_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        marker = b"event: batch"
    tail = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return
        data = tail + chunk
        counts[0] += data.count(marker)
        counts[1] += len(chunk)
        tail = data[-(len(marker) - 1) :]


async def probe_subscriber(
    kind: str, session: aiohttp.ClientSession, base: str, batch_id: str, latencies: list[float], counts: list[int]
) -> None:
    """Parse every message and time it against the commit time the writer put in the message."""

    def record(batch: dict[str, Any]) -> None:
        counts[0] += 1
        message = batch["collectors"][0].get("message") or ""
        if message.startswith("bench t="):
            latencies.append((time.time_ns() - int(message[8:])) / 1e6)

    if kind == "ws":
        async with session.ws_connect(base + "/api/ws", max_msg_size=0) as ws:
            await ws.send_json({"op": "subscribe", "batch_id": batch_id})
            async for msg in ws:
                body = json.loads(msg.data)
                if body.get("type") == "batch":
                    record(body["data"])
    else:
        async with session.get(f"{base}/api/collectors/runs/batch/{batch_id}/events") as resp:
            event = None
            async for line in resp.content:
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: ") and event == "batch":
                    record(json.loads(text[6:]))


def client_process(
    kind: str, n: int, port: int, batch_id: str, ready: Any, measure: Any, stop: Any, results: Any
) -> None:
    async def main() -> None:
        base = f"http://127.0.0.1:{port}"
        latencies: list[float] = []
        probe_counts = [0]
        raw_counts = [0, 0]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
            tasks = []
            for _ in range(min(PROBES, n)):
                tasks.append(
                    asyncio.create_task(probe_subscriber(kind, session, base, batch_id, latencies, probe_counts))
                )
            raw = max(0, n - PROBES)
            for start in range(0, raw, CONNECT_AT_ONCE):
                wave = [
                    asyncio.create_task(raw_subscriber(kind, port, batch_id, raw_counts))
                    for _ in range(min(CONNECT_AT_ONCE, raw - start))
                ]
                tasks += wave
                await asyncio.sleep(0.05)
            # Subscribed: every client has had its first (current state) message.
            deadline = time.monotonic() + 120
            while probe_counts[0] < min(PROBES, n) or raw_counts[0] < raw:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind}: only {probe_counts[0]} probes and {raw_counts[0]} raw subscribed")
                await asyncio.sleep(0.1)
            ready.set()
            await asyncio.to_thread(measure.wait)
            latencies.clear()
            start_counts = probe_counts[0] + raw_counts[0]
            began = time.monotonic()
            await asyncio.to_thread(stop.wait)
            elapsed = time.monotonic() - began
            delivered = probe_counts[0] + raw_counts[0] - start_counts
            failed = [t for t in tasks if t.done() and t.exception()]
            for task in tasks:
                task.cancel()
            results.put({"kind": kind, "delivered_per_second": delivered / elapsed, "latencies": latencies,
                         "clients_failed": len(failed)})  # fmt: skip

    asyncio.run(main())


# ---- the writer: a collector reporting 20 times a second ----


def writer(dsn: str, job_id: str, stop: threading.Event, slowest: list[float] | None = None) -> int:
    """Commit UPDATES_PER_SECOND updates a second to the job until ``stop``; the number made.
    ``slowest``, if given, holds the longest commit in seconds: a round whose writer stalled
    (the disk, PostgreSQL) then caught up in a burst measures that, not the hub."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    n = 0
    next_at = time.monotonic()
    with conn.cursor() as cur:
        while not stop.is_set():
            n += 1
            began = time.monotonic()
            cur.execute(
                "UPDATE job_runs SET status = 'running', progress_percent = %s, message = %s WHERE job_id = %s",
                (n % 99 + 1, f"bench t={time.time_ns()}", job_id),
            )
            if slowest is not None:
                slowest[0] = max(slowest[0], time.monotonic() - began)
            next_at += 1 / UPDATES_PER_SECOND
            time.sleep(max(0.0, next_at - time.monotonic()))
    conn.close()
    return n


def run_round(n: int, seconds: float, dsn: str) -> list[dict[str, Any]]:
    with harness.served(dsn) as (base, server):
        port = int(base.rsplit(":", 1)[1])

        async def setup() -> tuple[str, str]:
            async with aiohttp.ClientSession() as http:
                async with http.post(base + "/api/collectors/run", json={"collectors": ["demo"]}) as resp:
                    created = await resp.json()
            return created["batch_id"], created["collectors"][0]["job_id"]

        batch_id, job_id = asyncio.run(setup())
        rss_before = rss_bytes(server.pid)
        ctx = mp.get_context("fork")
        results = ctx.Queue()
        measure, stop = ctx.Event(), ctx.Event()
        rows: list[dict[str, Any]] = []
        processes = []
        idle: dict[str, float] = {}
        for kind in ("ws", "sse"):
            ready = ctx.Event()
            proc = ctx.Process(target=client_process, args=(kind, n, port, batch_id, ready, measure, stop, results))
            proc.start()
            processes.append(proc)
            if not ready.wait(180):
                raise RuntimeError(f"{kind} clients did not all subscribe")
            rss_now = rss_bytes(server.pid)
            idle[kind] = (rss_now - rss_before) / n
            rss_before = rss_now
        halt = threading.Event()
        written: list[int] = []
        thread = threading.Thread(target=lambda: written.append(writer(dsn, job_id, halt)))
        thread.start()
        time.sleep(2)  # warm-up: the first updates settle
        cpu_before = cpu_seconds(server.pid)
        measure.set()
        time.sleep(seconds)
        stop.set()
        cpu = (cpu_seconds(server.pid) - cpu_before) / seconds
        rss = rss_bytes(server.pid)
        halt.set()
        thread.join()
        for _ in processes:
            result = results.get(timeout=60)
            lat = sorted(result["latencies"])
            rows.append({
                "transport": "WebSocket" if result["kind"] == "ws" else "SSE",
                "subscribers": n,
                "delivered_per_second": round(result["delivered_per_second"]),
                "offered_per_second": n * UPDATES_PER_SECOND,
                "p50_ms": round(statistics.median(lat), 1) if lat else None,
                "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 1) if lat else None,
                "server_cpu_percent": round(cpu * 100),
                "server_rss_mib": round(rss / 2**20),
                "idle_kib_per_connection": round(idle[result["kind"]] / 1024, 1),
                "clients_failed": result["clients_failed"],
            })  # fmt: skip
        for proc in processes:
            proc.join(30)
        return sorted(rows, key=lambda r: r["transport"], reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1000,5000", help="comma-separated N per transport")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per round")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it too

    rows = []
    with harness.database() as dsn:
        for n in (int(x) for x in args.subscribers.split(",")):
            rows += run_round(n, args.seconds, dsn)

    print(f"\n{UPDATES_PER_SECOND} updates/s to one job; N WebSocket and N SSE subscribers at once on its batch;"
          f" {args.seconds:g} s measured per round\n")  # fmt: skip
    head = f"{'transport':<10} {'N':>6} {'delivered/s':>12} {'offered/s':>10} {'p50 ms':>7} {'p99 ms':>7}"
    print(head + f" {'srv CPU %':>9} {'srv RSS MiB':>11} {'KiB/idle conn':>13} {'failed':>6}")
    for r in rows:
        print(
            f"{r['transport']:<10} {r['subscribers']:>6} {r['delivered_per_second']:>12} {r['offered_per_second']:>10}"
            f" {r['p50_ms']!s:>7} {r['p99_ms']!s:>7} {r['server_cpu_percent']:>9} {r['server_rss_mib']:>11}"
            f" {r['idle_kib_per_connection']:>13} {r['clients_failed']:>6}"
        )
    out = harness.ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fanout.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
