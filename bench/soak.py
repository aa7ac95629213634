"""Soak: 1,000 live subscribers with 50 connects and 50 disconnects a second, for a bounded
time, while a collector reports 20 times a second and its batches start and end.

    python bench/soak.py                        # 10 minutes
    python bench/soak.py --minutes 1 --subscribers 200

One `collector-hub serve` process on 127.0.0.1 (an embedded PostgreSQL of the bench's own, or
COLLECTOR_HUB_DATABASE_URL). Half the subscribers are WebSockets subscribed to the demo
collector's runs, half SSE streams of them (bench/peer_clients.py, in their own processes).
Every --batch-seconds the running batch ends (its job completes with the message
``bench end=<job id>``) and a new one starts. It checks, and prints:

  * server RSS growth from the end of the warm-up to the end: under 5 %;
  * no leaked tasks or file descriptors: once every client has gone, the server's own count
    of tasks (``collector_hub_event_loop_tasks`` on /metrics) is back to what it was before the
    first client came, and its descriptors (``collector_hub_open_fds``) to what they were
    after the warm-up less the open connections (the database pool grows in the warm-up);
  * every terminal state reached every subscriber that was subscribed before it was
    committed and stayed connected for --grace seconds after.

It stops by itself after --minutes (plus connecting and draining); results also go to
bench/results/soak-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import re
import resource
import threading
import time
import urllib.request
from typing import Any

import fanout
import harness
import peer_clients
import peers
import psycopg2

_END = re.compile(rb"bench end=(\w+)")
CHURN_AT_ONCE = 5  # clients replaced per step; steps are spread over each second


def client_process(spec: dict[str, Any], stop: Any, results: Any) -> None:
    """Keep ``spec["n"]`` clients connected, replacing ``spec["churn"]`` a second, until
    ``stop``; report each client's subscribed/closed times and the runs it saw end."""

    async def main() -> None:
        port = spec["port"]
        subscribe = json.dumps({"op": "subscribe", "collectors": ["demo"]}).encode()
        targets = [
            peer_clients.Target("ws", "127.0.0.1", port, "/api/ws", [peer_clients.masked_frame(subscribe)],
                                b'"type": "subscribed"'),
            peer_clients.Target("sse", "127.0.0.1", port, "/api/collectors/events?collectors=demo", [], b"retry:"),
        ]  # fmt: skip
        tally = peer_clients.Tally()
        loop = asyncio.get_running_loop()
        records: list[tuple[peer_clients.Client, set[str]]] = []
        live: list[peer_clients.Client] = []
        connecting: set[asyncio.Task[None]] = set()

        async def open_one(i: int) -> None:
            ended: set[str] = set()
            tail = [b""]

            def on_data(data: bytes) -> None:
                buf = tail[0] + data
                ended.update(m.group(1).decode() for m in _END.finditer(buf))
                tail[0] = buf[-40:]

            target = targets[i % 2]
            _, client = await loop.create_connection(
                lambda: peer_clients.Client(target, tally, False, on_data), target.host, target.port
            )
            records.append((client, ended))
            live.append(client)

        for start in range(0, spec["n"], 100):
            await asyncio.gather(*(open_one(i) for i in range(start, min(spec["n"], start + 100))))
            await asyncio.sleep(0.05)
        opened = spec["n"]
        step = CHURN_AT_ONCE / spec["churn"] if spec["churn"] else None
        next_at = time.monotonic()
        while not stop.is_set():
            if step is None:
                await asyncio.sleep(0.2)
                continue
            for _ in range(CHURN_AT_ONCE):
                live.pop(random.randrange(len(live))).close()
                task = asyncio.ensure_future(open_one(opened))
                connecting.add(task)
                task.add_done_callback(connecting.discard)
                opened += 1
            next_at += step
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        report = [(c.ready_at, c.closed_at, sorted(ended), c.target.protocol) for c, ended in records]
        for client in live:
            client.close()
        await asyncio.sleep(0.5)
        results.put({"clients": report, "failed": sum(1 for c, _ in records if c.ready_at is None)})

    asyncio.run(main())


def writer(dsn: str, base: str, stop: threading.Event, batch_seconds: float, ends: list[tuple[str, float]]) -> None:
    """The demo collector reporting 20 times a second; every ``batch_seconds`` its job
    completes (ending the batch) and a new batch starts."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        while not stop.is_set():
            _, job_id = peers.new_batch(base, dsn)
            started = time.monotonic()
            n = 0
            while not stop.is_set() and time.monotonic() - started < batch_seconds:
                n += 1
                cur.execute(
                    "UPDATE job_runs SET progress_percent = %s, message = %s WHERE job_id = %s",
                    (n % 99 + 1, f"bench t={time.time_ns()}", job_id),
                )
                time.sleep(max(0.0, started + n / fanout.UPDATES_PER_SECOND - time.monotonic()))
            cur.execute(
                "UPDATE job_runs SET status = 'completed', progress_percent = 100, message = %s WHERE job_id = %s",
                (f"bench end={job_id}", job_id),
            )
            ends.append((job_id, time.time()))  # committed (autocommit) by now
    conn.close()


def server_counts(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    wanted = {"collector_hub_event_loop_tasks": "tasks", "collector_hub_open_fds": "fds",
              'collector_hub_open_connections{transport="websocket"}': "ws",
              'collector_hub_open_connections{transport="sse"}': "sse"}  # fmt: skip
    found = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            found[wanted[name]] = float(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the churn and the updates go on")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--churn", type=int, default=50, help="connects (and disconnects) a second")
    parser.add_argument("--batch-seconds", type=float, default=10.0, help="how long each batch runs")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline")
    parser.add_argument("--grace", type=float, default=2.0, help="seconds a terminal state may take to arrive")
    parser.add_argument("--client-processes", type=int, default=2)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with harness.database() as dsn, harness.served(dsn) as (base, server):
        port = int(base.rsplit(":", 1)[1])
        peers.new_batch(base, dsn)  # the demo collector has a latest run from the start
        before = server_counts(base)
        ctx = mp.get_context("fork")
        stop, results = ctx.Event(), ctx.Queue()
        share = args.subscribers // args.client_processes
        procs = [
            ctx.Process(target=client_process, args=({"port": port, "n": share,
                                                       "churn": args.churn // args.client_processes}, stop, results))
            for _ in range(args.client_processes)
        ]  # fmt: skip
        for proc in procs:
            proc.start()
        halt = threading.Event()
        ends: list[tuple[str, float]] = []
        thread = threading.Thread(target=writer, args=(dsn, base, halt, args.batch_seconds, ends), daemon=True)
        thread.start()
        began = time.monotonic()
        samples: list[dict[str, float]] = []
        cpu_start = fanout.cpu_seconds(server.pid)
        while (elapsed := time.monotonic() - began) < args.minutes * 60:
            sample = {"t": round(elapsed), "rss_mib": fanout.rss_bytes(server.pid) / 2**20, **server_counts(base)}
            samples.append(sample)
            print(f"  {sample['t']:>4} s  RSS {sample['rss_mib']:.1f} MiB  tasks {sample.get('tasks')}  fds "
                  f"{sample.get('fds')}  open ws {sample.get('ws')} sse {sample.get('sse')}", flush=True)  # fmt: skip
            time.sleep(min(10.0, max(0.0, args.minutes * 60 - elapsed)))
        cpu = (fanout.cpu_seconds(server.pid) - cpu_start) / (time.monotonic() - began)
        halt.set()
        thread.join(30)
        time.sleep(args.grace)
        stop.set()
        reports = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(30)
        deadline = time.monotonic() + 60
        while True:  # every client gone: the server's counts should be back where they started
            after = server_counts(base)
            if (after.get("ws", 0) + after.get("sse", 0) == 0 and after["tasks"] <= before["tasks"]) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(1)
        rss_end = fanout.rss_bytes(server.pid) / 2**20
    warm = next((s for s in samples if s["t"] >= args.warmup), samples[0])
    warm_fds = warm["fds"] - warm.get("ws", 0) - warm.get("sse", 0)
    clients = [c for r in reports for c in r["clients"]]
    checked = missed = 0
    misses = []
    for job_id, at in ends:
        for ready_at, closed_at, seen, protocol in clients:
            if ready_at is not None and ready_at < at and (closed_at is None or closed_at > at + args.grace):
                checked += 1
                if job_id not in seen:
                    missed += 1
                    closed_after = None if closed_at is None else round(closed_at - at, 3)
                    misses.append({"job_id": job_id, "protocol": protocol, "closed_after_s": closed_after,
                                   "subscribed_before_s": round(at - ready_at, 3)})  # fmt: skip
    result = {
        "started": started, "machine": peers.machine(), "args": vars(args),
        "clients_connected": len(clients), "clients_closed_before_subscribed": sum(r["failed"] for r in reports),
        "batches_ended": len(ends), "terminal_deliveries_checked": checked, "terminal_deliveries_missed": missed,
        "rss_mib_after_warmup": round(warm["rss_mib"], 1), "rss_mib_end": round(samples[-1]["rss_mib"], 1),
        "rss_growth_percent": round(100 * (samples[-1]["rss_mib"] - warm["rss_mib"]) / warm["rss_mib"], 2),
        "rss_mib_after_clients_left": round(rss_end, 1), "server_cpu_percent": round(100 * cpu, 1),
        "misses": misses, "before_clients": before, "fds_less_connections_after_warmup": warm_fds,
        "after_clients_left": after, "samples": samples,
    }  # fmt: skip
    ok = (
        result["rss_growth_percent"] < 5
        and missed == 0
        and after["tasks"] <= before["tasks"]
        and after["fds"] <= warm_fds
    )
    print(f"\n{started}: {args.minutes:g} min, {args.subscribers} subscribers, {args.churn}/s churn, "
          f"{len(clients)} connections in all ({result['clients_closed_before_subscribed']} closed by the churn before "
          "they had subscribed)")  # fmt: skip
    print(f"RSS {result['rss_mib_after_warmup']} MiB after warm-up -> {result['rss_mib_end']} MiB at the end "
          f"({result['rss_growth_percent']:+.2f} %); server CPU {result['server_cpu_percent']} %")  # fmt: skip
    print(f"tasks {before['tasks']:g} before the clients -> {after['tasks']:g} after they left; fds less open "
          f"connections {warm_fds:g} after the warm-up -> {after['fds']:g} after they left")  # fmt: skip
    print(f"terminal states: {len(ends)} batches ended, {checked} (subscriber, end) pairs checked, {missed} missed")
    print("PASS" if ok else "FAIL")
    out = harness.ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"soak-{started.replace(':', '')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
