"""The hub's CPU per pushed state in its two parts, each against its own floor, so that the
ratio bench/peers.py measures at a given N can be read:

    python bench/fanout_parts.py                        # N = 1000 and 5000 sockets, 30 s of states
    python bench/fanout_parts.py --sockets 1000 --seconds 10
    python bench/fanout_parts.py --sockets '' --repeat 3 --compare /work/main   # part 2 only,
        # this checkout against another one, alternating, three rounds each
    python bench/fanout_parts.py --sockets '' --repeat 3 --floor   # part 2 and its floor
    python bench/fanout_parts.py --sockets '' --repeat 5 --compare /work/main --together
        # part 2, both checkouts' servers following the same states at once: paired rounds

1. Per subscriber: the hub's fanout loop (``Hub._offer_single`` -> ``fanout.offer_each``, the
   code every push goes through) against a bare loop of ``transport.write(frame)``, over the
   same N loopback sockets, in this one process, alternating round by round (median of the
   rounds). The sockets' peers are drained between rounds, outside the timing.
2. Per state, whatever N: the CPU of a `collector-hub serve` process (no runner) for each state
   a writer commits 20 times a second, with one WebSocket follower: the NOTIFY, the re-read of
   the batch, the encoding, the diff and one send; and the CPU of the PostgreSQL backend of its
   LISTEN connection (which runs the re-read, and builds the bodies' JSON), so that work moved
   into the database shows. With ``--compare`` the other checkout's server is measured the same
   way, in turns; with ``--together`` too, both servers run at once, each with its follower of
   the same batch, and their CPU is read over the same seconds: the load of a shared machine
   then moves both figures alike, and the ratio of each round is printed.

3. With ``--floor``, the floor of part 2: a bare asyncio process (no hub, no aiohttp) with one
   psycopg2 asynchronous connection that LISTENs and only receives each NOTIFY, and the same
   process also running the hub's re-read of the batch (its statement, prepared as the hub
   prepares it, on that connection) for each: what any design that re-reads on the LISTEN
   connection with psycopg2 pays; with the CPU of its PostgreSQL backend too.

4. With ``--behind M``, per message of a client that fell behind (its events queued in its
   outbox, sent by its connection's writer): the writer's two ways on one aiohttp WebSocket,
   whose client reads in another process, alternating, M messages each: an event written as
   the shared frame once the socket has room (``Subscriber.write_taken``), and a message sent
   the writer's own way (``send_frame`` under ``asyncio.timeout``, what a control message, or
   any message to a socket still full, costs). Thread CPU time, the send included.

At N subscribers the hub's CPU per delivered message is then about
``offer_ratio x bare + fixed / N``, where ``bare`` is the bare loop's CPU per message: a fixed
cost of 1 ms per state is 1 us of every message at N=1000 and 0.2 us at N=5000.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import fanout
import harness
import peers
import psycopg2
from aiohttp import web

from server.realtime.events import Event  # the bench measures the hub's own code
from server.realtime.fanout import DIRECT_WRITE_LIMIT
from server.realtime.hub import Hub
from server.realtime.listen_connection import APPLICATION_NAME
from server.realtime.subscriber import Subscriber
from server.realtime.subscriptions import Subscription
from server.runs.live import BATCHES

ROUNDS = 300
BODY = b'{"message": "' + b"x" * 720 + b'"}'  # about the size of a batch event


class _Keep(asyncio.Protocol):
    def __init__(self, transports: list[asyncio.Transport], n: int, all_in: asyncio.Event) -> None:
        self._transports, self._n, self._all_in = transports, n, all_in

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transports.append(transport)
        if len(self._transports) == self._n:
            self._all_in.set()


async def offer_cost(n: int, rounds: int) -> dict[str, float]:
    """Median microseconds per subscriber of one fanout, hub and bare, on the same sockets."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    all_in = asyncio.Event()
    server = await loop.create_server(lambda: _Keep(transports, n, all_in), "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    peers_: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            peers_.append(sock)
        await asyncio.wait_for(all_in.wait(), 60)
        subs = []
        for transport in transports:
            subscriber = Subscriber(100, "bench", "websocket")
            subscriber.write_directly(transport)
            subs.append(Subscription(subscriber, "batch", "bc_bench"))
        timings: dict[str, list[float]] = {"hub": [], "bare": []}
        for seq in range(1, rounds + 1):
            for kind in ("hub", "bare"):
                event = Event("batch", "bc_bench", seq, BODY, "running")
                frame = event.ws_frame()
                await asyncio.sleep(0)
                _drain(peers_)
                started = time.perf_counter()
                if kind == "hub":
                    Hub._offer_single(None, list(subs), event)  # type: ignore[arg-type]  # uses no hub state for a running event
                else:
                    for transport in list(transports):
                        transport.write(frame)
                timings[kind].append(time.perf_counter() - started)
        return {kind: 1e6 * statistics.median(values) / n for kind, values in timings.items()}
    finally:
        for sock in peers_:
            sock.close()
        for transport in transports:
            transport.abort()
        server.close()
        await server.wait_closed()


_READER = """
import asyncio, sys, aiohttp
async def main():
    async with aiohttp.ClientSession() as http, http.ws_connect(sys.argv[1], max_msg_size=0) as ws:
        async for _ in ws:
            pass
asyncio.run(main())
"""


async def behind_cost(messages: int, rounds: int = 6) -> dict[str, float]:
    """Part 4: median microseconds of thread CPU per message, each of the writer's two ways."""
    opened: asyncio.Future[tuple[web.WebSocketResponse, asyncio.BaseTransport]] = asyncio.Future()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        assert request.transport is not None
        opened.set_result((ws, request.transport))
        await asyncio.Event().wait()  # held open until the runner is cleaned up
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = harness.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    reader = await asyncio.create_subprocess_exec(sys.executable, "-c", _READER, f"http://127.0.0.1:{port}/ws")
    try:
        ws, transport = await asyncio.wait_for(opened, 30)
        subscriber = Subscriber(100, "bench", "websocket")
        subscriber.write_directly(transport)
        timings: dict[str, list[float]] = {"shared frame (write_taken)": [], "the writer's own way": []}
        seq = 0
        for _ in range(rounds):
            for way, values in timings.items():
                own_way = way == "the writer's own way"
                # The last round's bytes read first (a transport has no public wait for that).
                while transport.get_write_buffer_size():  # type: ignore[attr-defined]  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                started = time.thread_time()
                for _ in range(messages):
                    seq += 1
                    event = Event("batch", "bc_bench", seq, BODY, "running")
                    if own_way:
                        async with asyncio.timeout(10):
                            await ws.send_frame(event.ws_message(), aiohttp.WSMsgType.TEXT)
                    elif not subscriber.write_taken(event):
                        raise RuntimeError("the socket filled up: read faster, or send fewer messages")
                    if transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT // 2:  # type: ignore[attr-defined]
                        await asyncio.sleep(0.001)  # let the reader catch up, outside no timing that matters
                values.append(1e6 * (time.thread_time() - started) / messages)
        return {way: statistics.median(values) for way, values in timings.items()}
    finally:
        reader.kill()
        await reader.wait()
        await runner.cleanup()


def _drain(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(BlockingIOError):
            while sock.recv(1 << 20):
                pass


IDLE_SETTLE = 3.0  # seconds after a start before idle is read


def idle_slices(seconds: float) -> int:
    """How many one-second slices of idle CPU to read for a round of ``seconds``."""
    return max(5, round(seconds / 3))


def idle_rates(samples: list[list[float]]) -> list[float]:
    """CPU seconds per second of each counter when idle: the median over the slices between
    ``samples`` (each the monotonic time, then a reading of every counter). A median, not the whole window's
    mean: a process's one-off burst soon after it starts (about 14 ms within one second, seen
    only in a checkout whose ``__pycache__`` the test suite had written; this machine sets
    PYTHONDONTWRITEBYTECODE) fell in the window, was multiplied by the round's length and made
    a state look up to a third cheaper."""
    slices = [
        [(b - a) / (later[0] - earlier[0]) for a, b in zip(earlier[1:], later[1:], strict=True)]
        for earlier, later in itertools.pairwise(samples)
    ]
    return [statistics.median(column) for column in zip(*slices, strict=True)]


def fixed_cost(dsn: str, seconds: float, roots: list[Path | None]) -> list[dict[str, float]]:
    """Server CPU per state with one follower, and with none moving (idle), for one serve
    process of each checkout in ``roots`` (None: this one), all following the same batch at
    once, measured over the same seconds: with two, a paired comparison that the machine's
    load moves alike."""
    own_root = harness.ROOT
    with contextlib.ExitStack() as stack:
        servers: list[tuple[str, int, int]] = []  # base URL, serve process, its LISTEN backend
        for root in roots:
            harness.ROOT = root or own_root  # served() starts `python -m server` in ROOT
            try:
                base, proc = stack.enter_context(harness.served(dsn))
            finally:
                harness.ROOT = own_root
            servers.append((base, proc.pid, listener_backend(dsn, exclude=[backend for _, _, backend in servers])))
        batch_id, job_id = peers.new_batch(servers[0][0], dsn)
        return asyncio.run(_fixed_cost(dsn, seconds, servers, batch_id, job_id))


def listener_backend(dsn: str, application_name: str = APPLICATION_NAME, exclude: list[int] | None = None) -> int:
    """The process id of the PostgreSQL backend serving the LISTEN connection (found by its
    application_name; not one of ``exclude``, the backends of servers started before), whose
    CPU is PostgreSQL's share of each re-read."""
    deadline = time.monotonic() + 30
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        conn.autocommit = True
        while True:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> ALL(%s)",
                (application_name, exclude or []),
            )
            found = [row[0] for row in cur.fetchall()]
            if len(found) == 1 or time.monotonic() > deadline:
                assert len(found) == 1, f"{len(found)} sessions named {application_name!r}"
                return int(found[0])
            time.sleep(0.1)


async def _fixed_cost(
    dsn: str, seconds: float, servers: list[tuple[str, int, int]], batch_id: str, job_id: str
) -> list[dict[str, float]]:
    received = [0] * len(servers)

    def cpu() -> list[tuple[float, float]]:  # (serve process, its backend) of each server
        return [(fanout.cpu_seconds(pid), fanout.cpu_seconds(backend)) for _, pid, backend in servers]

    async def follow(ws: aiohttp.ClientWebSocketResponse, index: int) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT and '"type": "batch"' in message.data:
                received[index] += 1

    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        followers = []
        for index, (base, _, _) in enumerate(servers):
            ws = await stack.enter_async_context(http.ws_connect(base + "/api/ws"))
            await ws.send_json({"op": "subscribe", "batch_id": batch_id})
            followers.append(asyncio.create_task(follow(ws, index)))
        await asyncio.sleep(IDLE_SETTLE)
        samples = [[time.monotonic(), *(x for pair in cpu() for x in pair)]]
        for _ in range(idle_slices(seconds)):
            await asyncio.sleep(1)
            samples.append([time.monotonic(), *(x for pair in cpu() for x in pair)])
        rates = idle_rates(samples)
        idle = list(zip(rates[0::2], rates[1::2], strict=True))  # per second: (serve process, its backend)
        halt = threading.Event()
        thread = threading.Thread(target=fanout.writer, args=(dsn, job_id, halt), daemon=True)
        thread.start()
        await asyncio.sleep(2)  # warm-up
        before, received_before = cpu(), list(received)
        await asyncio.sleep(seconds)
        used = [(a - c, b - d) for (a, b), (c, d) in zip(cpu(), before, strict=True)]
        states = [now - then for now, then in zip(received, received_before, strict=True)]
        halt.set()
        thread.join(10)
        for follower in followers:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
    results = []
    for (own, pg), (own_idle, pg_idle), count in zip(used, idle, states, strict=True):
        results.append(
            {
                "states": count,
                "ms_per_state": round(1000 * (own - own_idle * seconds) / max(1, count), 3),
                "pg_ms_per_state": round(1000 * (pg - pg_idle * seconds) / max(1, count), 3),
                "idle_cpu_percent": round(100 * own_idle, 2),
            }
        )
    return results


_FLOOR_PROCESS = r"""
import asyncio, sys, psycopg2, psycopg2.extensions
dsn, read, sql, batch_id = sys.argv[1], sys.argv[2] == "read", sys.argv[3], sys.argv[4]

async def main():
    loop = asyncio.get_running_loop()
    conn = psycopg2.connect(dsn, async_=True, application_name="fanout-parts floor")
    while conn.poll() != psycopg2.extensions.POLL_OK:
        await asyncio.sleep(0.01)
    cur = conn.cursor()
    for statement in ("LISTEN collector_hub", "PREPARE hub_read AS " + sql.replace("%s", "$1")):
        cur.execute(statement)
        while conn.poll() != psycopg2.extensions.POLL_OK:
            await asyncio.sleep(0.01)
    reading = False
    count = 0

    def ready():
        nonlocal reading, count
        state = conn.poll()
        notified = bool(conn.notifies)
        count += len(conn.notifies)
        conn.notifies.clear()
        if reading and state == psycopg2.extensions.POLL_OK:
            reading = False
            cur.fetchall()
        if notified and read and not reading:
            cur.execute("EXECUTE hub_read(%s)", (batch_id,))
            reading = True
            conn.poll()

    loop.add_reader(conn.fileno(), ready)
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.readline() and print(count, flush=True))
    print("listening", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def floor_cost(dsn: str, seconds: float, read: bool) -> tuple[float, float]:
    """Part 3: CPU ms per state of the bare process, and of its PostgreSQL backend, idle CPU
    subtracted."""
    with harness.served(dsn) as (base, _):
        batch_id, job_id = peers.new_batch(base, dsn)
    sql, _ = BATCHES.snapshot_statement(batch_id)
    args = [sys.executable, "-c", _FLOOR_PROCESS, dsn, "read" if read else "notify", sql, batch_id]
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdin is not None and process.stdout is not None
        stdin, stdout = process.stdin, process.stdout

        def notified() -> int:  # how many NOTIFYs the process has received
            stdin.write("\n")
            stdin.flush()
            return int(stdout.readline())

        try:
            assert stdout.readline().strip() == "listening"
            backend = listener_backend(dsn, "fanout-parts floor")
            time.sleep(IDLE_SETTLE)
            samples = [[time.monotonic(), fanout.cpu_seconds(process.pid), fanout.cpu_seconds(backend)]]
            for _ in range(idle_slices(seconds)):
                time.sleep(1)
                samples.append([time.monotonic(), fanout.cpu_seconds(process.pid), fanout.cpu_seconds(backend)])
            idle_per_second, pg_idle_per_second = idle_rates(samples)
            halt = threading.Event()
            thread = threading.Thread(target=fanout.writer, args=(dsn, job_id, halt), daemon=True)
            thread.start()
            time.sleep(2)  # warm-up
            before, received, started = fanout.cpu_seconds(process.pid), notified(), time.monotonic()
            pg_before = fanout.cpu_seconds(backend)
            time.sleep(seconds)
            cpu, elapsed = fanout.cpu_seconds(process.pid) - before, time.monotonic() - started
            pg_cpu = fanout.cpu_seconds(backend) - pg_before
            states = notified() - received
            halt.set()
            thread.join(10)
        finally:
            process.kill()
    return (
        round(1000 * (cpu - idle_per_second * elapsed) / max(1, states), 3),
        round(1000 * (pg_cpu - pg_idle_per_second * elapsed) / max(1, states), 3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="1000,5000", help="comma-separated N for the per-subscriber part")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds of states for the fixed part")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the fixed part (a range is printed)")
    parser.add_argument("--compare", type=Path, help="another checkout whose fixed part is measured too, alternating")
    parser.add_argument(
        "--together",
        action="store_true",
        help="with --compare: both checkouts' servers follow the same states at once, each round (paired figures)",
    )
    parser.add_argument("--floor", action="store_true", help="measure the floor of the fixed part too (part 3)")
    parser.add_argument("--behind", type=int, default=0, help="messages per round of part 4 (a client behind)")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # two descriptors per socket here
    rows: list[dict[str, Any]] = []
    for n in (int(x) for x in args.sockets.split(",") if x.strip()):
        cost = asyncio.run(offer_cost(n, args.rounds))
        rows.append(
            {"n": n, **{k: round(v, 2) for k, v in cost.items()}, "ratio": round(cost["hub"] / cost["bare"], 3)}
        )
    if rows:
        print("per subscriber, one fanout (median of the rounds, same sockets, one process):")
        print(f"{'N':>6} {'hub us':>7} {'bare us':>8} {'hub/bare':>8}")
        for row in rows:
            print(f"{row['n']:>6} {row['hub']:>7} {row['bare']:>8} {row['ratio']:>8}")
        print()
    if args.behind:
        for way, per_message in asyncio.run(behind_cost(args.behind)).items():
            print(f"a client behind, {way}: {per_message:.2f} us of CPU per message (median of 6 rounds)")
    if args.repeat < 1:
        return  # no fixed part
    checkouts: dict[str, Path | None] = {"this checkout": None}
    if args.compare is not None:
        checkouts = {str(args.compare.resolve()): args.compare.resolve(), **checkouts}
    fixed: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    floors: dict[str, list[tuple[float, float]]] = {"NOTIFY only": [], "NOTIFY and the hub's read": []}
    load = [os.getloadavg()[0]]
    with harness.database() as dsn:
        for _ in range(args.repeat):
            if args.together:
                results = fixed_cost(dsn, args.seconds, list(checkouts.values()))
                for name, result in zip(checkouts, results, strict=True):
                    fixed[name].append(result)
                load.append(os.getloadavg()[0])
            else:
                for name, root in checkouts.items():
                    fixed[name].extend(fixed_cost(dsn, args.seconds, [root]))
                    load.append(os.getloadavg()[0])
            if args.floor:
                for name, read in zip(floors, (False, True), strict=True):
                    floors[name].append(floor_cost(dsn, args.seconds, read))
                    load.append(os.getloadavg()[0])
    print(
        f"per state, any N (serve, one follower, {fanout.UPDATES_PER_SECOND} states/s, {args.seconds:g} s a round,"
        f" idle CPU subtracted; load average {min(load):.1f}-{max(load):.1f}):"
    )
    for name, results in fixed.items():
        figures = [r["ms_per_state"] for r in results]
        pg = [r["pg_ms_per_state"] for r in results]
        each = ", ".join(f"{r['ms_per_state']} over {r['states']:g}" for r in results)
        print(f"  {name}: {min(figures)}-{max(figures)} ms of CPU per state ({each} states)")
        print(f"    and its LISTEN connection's PostgreSQL backend: {min(pg)}-{max(pg)} ms ({', '.join(map(str, pg))})")
    if args.together and len(fixed) == 2:
        (other, theirs), (_, ours) = fixed.items()
        ratios = [round(o["ms_per_state"] / t["ms_per_state"], 3) for o, t in zip(ours, theirs, strict=True)]
        print(f"  this checkout / {other}, round by round: {', '.join(map(str, ratios))}")
    if args.floor:
        print("its floor (a bare asyncio process with psycopg2 on the LISTEN connection, no hub; then its backend's):")
        for name, pairs in floors.items():
            own, pg = [pair[0] for pair in pairs], [pair[1] for pair in pairs]
            print(
                f"  {name}: {min(own)}-{max(own)} ms of CPU per state ({', '.join(map(str, own))});"
                f" PostgreSQL {min(pg)}-{max(pg)} ms ({', '.join(map(str, pg))})"
            )


if __name__ == "__main__":
    main()
