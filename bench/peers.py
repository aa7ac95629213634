"""The hub side by side with its peers: server CPU per delivered message, latency, delivery
and memory per idle connection, for the same clients and the same message.

    python bench/peers.py                                   # every peer, N = 1000 and 5000
    python bench/peers.py --peers hub-ws,bare-ws --subscribers 1000 --seconds 8 --repeat 3
    python bench/peers.py --peers hub-ws,bare-ws,hub-ws-uvloop,bare-ws-uvloop --reading continuous

Peers (one server process each, on 127.0.0.1, 20 updates a second of the hub's own batch
message, about 740 bytes):

    hub-ws, hub-sse   `collector-hub serve` (no runner): a writer commits 20 updates a second
                      to a job through PostgreSQL; NOTIFY -> re-read -> fanout to N followers
                      of its batch, over WebSocket or SSE
    bare-ws, bare-sse a bare aiohttp loop writing one pre-built frame (SSE: chunk) to each
                      transport: the floor the hub is held to
    ...-uvloop        the four above on uvloop's event loop (serve --loop uvloop; the bare
                      loops likewise), each held to the bare loop on uvloop
    naive-ws          a bare aiohttp loop awaiting ``ws.send_str`` for each client
    websockets        the websockets library's ``broadcast()``
    socketio          python-socketio in aiohttp mode, ``emit`` to a room
    node-ws           Node's ``ws`` (when ``node`` is on PATH; bench/node is npm-installed once)

The peers are optional: ``pip install -e '.[peers,uvloop]'``. Clients are raw asyncio
protocols (bench/peer_clients.py) in their own processes, the same for every peer, on uvloop's
event loop when it is installed (``--client-loop``: with asyncio's, 5,000 clients that read each
message as it arrives need more CPU than two cores leave them, and the servers are measured
under overload); each row gives the clients' CPU too. 100 probes
spread over the connection order time every message from the update's stamp to its receipt,
the others count. How the counting clients read is ``--reading``: ``drain``, every
``--drain-every`` seconds, several messages a read (bench/peer_clients.py says why), and
``continuous``, each message as it arrives, as a live dashboard does; the default measures
both, and every row says which.
Everything shares one machine: compare the ratios of one run (each ratio is
against the bare pre-built loop of the same transport and N, measured in the same
repetition), not figures of different runs. Results also go to bench/results/peers-*.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fanout
import harness
import peer_clients
import psycopg2

BENCH = Path(__file__).resolve().parent
PEERS = (
    "hub-ws", "bare-ws", "hub-sse", "bare-sse",
    "hub-ws-uvloop", "bare-ws-uvloop", "hub-sse-uvloop", "bare-sse-uvloop",
    "naive-ws", "websockets", "socketio", "node-ws",
)  # fmt: skip
READINGS = ("drain", "continuous")
PROBES = 100


@dataclass
class Server:
    pid: int
    target: peer_clients.Target
    start: Callable[[], None]
    stop: Callable[[], None]
    slowest_commit: list[float] | None = None  # the hub's writer: its longest commit, seconds


def transport_of(peer: str) -> str:
    return "sse" if "-sse" in peer else "ws"


def loop_of(peer: str) -> str:
    return "uvloop" if peer.endswith("-uvloop") else "asyncio"


def floor_of(peer: str) -> str:
    """The bare pre-built loop a peer is held to: same transport, same event loop."""
    return f"bare-{transport_of(peer)}" + ("-uvloop" if loop_of(peer) == "uvloop" else "")


def http_json(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def new_batch(base: str, dsn: str) -> tuple[str, str]:
    """A batch with one demo job, running, whose message is ``bench t=0``."""
    created = http_json("POST", base + "/api/collectors/run", {"collectors": ["demo"]})
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    with contextlib.closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cur:
        conn.autocommit = True
        cur.execute(
            "UPDATE job_runs SET status = 'running', progress_percent = 1, message = 'bench t=0' WHERE job_id = %s",
            (job_id,),
        )
    return batch_id, job_id


def body_template(dsn: str) -> str:
    """The hub's batch GET body with ``BENCH_STAMP`` where the update's time goes."""
    with harness.served(dsn) as (base, _):
        batch_id, _ = new_batch(base, dsn)
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(f"{base}/api/collectors/runs/batch/{batch_id}", timeout=30) as resp:
                text: str = resp.read().decode()
            if "bench t=0" in text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    return text.replace("bench t=0", "bench t=BENCH_STAMP")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the peer exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the peer did not listen within 30 s")
        time.sleep(0.05)


@contextlib.contextmanager
def hub_server(peer: str, dsn: str, workers: int) -> Iterator[Server]:
    with harness.served(dsn, workers=str(workers), loop=loop_of(peer)) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        batch_id, job_id = new_batch(base, dsn)
        halt = threading.Event()
        slowest = [0.0]
        thread = threading.Thread(target=fanout.writer, args=(dsn, job_id, halt, slowest), daemon=True)
        target = peer_clients.hub_target(transport_of(peer), port, batch_id)

        def stop() -> None:
            halt.set()
            if thread.is_alive():
                thread.join(10)

        yield Server(proc.pid, target, thread.start, stop, slowest)
        stop()


@contextlib.contextmanager
def peer_server(peer: str, body_file: Path) -> Iterator[Server]:
    port = free_port()
    if peer == "node-ws":
        command = ["node", str(BENCH / "node" / "ws_peer.js"), str(port), str(body_file)]
    else:
        kind = peer.removesuffix("-uvloop")
        command = [sys.executable, str(BENCH / "peer_servers.py"), kind, "--port", str(port), "--body", str(body_file),
                   "--loop", loop_of(peer)]  # fmt: skip
    proc = subprocess.Popen(command)
    try:
        wait_for_port(port, proc)
        protocol = "socketio" if peer == "socketio" else transport_of(peer)
        yield Server(proc.pid, peer_clients.peer_target(protocol, port), lambda: proc.send_signal(signal.SIGUSR2),
                     lambda: None)  # fmt: skip
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_round(
    peer: str, n: int, seconds: float, dsn: str, body_file: Path, processes: int, workers: int = 1,
    drain_every: float = 0.2, reading: str = "drain", client_loop: str = "asyncio",
) -> dict[str, Any]:  # fmt: skip
    """One peer at one N: its clients connect, then are measured for ``seconds``. ``reading``:
    ``drain`` (every ``drain_every`` s) or ``continuous`` (each message as it arrives)."""
    if reading == "continuous":
        drain_every = 0.0
    load_before = os.getloadavg()[0]
    server_cm = hub_server(peer, dsn, workers) if peer.startswith("hub") else peer_server(peer, body_file)
    ctx = mp.get_context("fork")
    with server_cm as server:
        rss_before = fanout.rss_bytes(server.pid)
        results = ctx.Queue()
        measure, stop = ctx.Event(), ctx.Event()
        procs, readies = [], []
        share = -(-n // processes)
        for k in range(processes):
            count = min(share, n - k * share)
            if count <= 0:
                break
            ready = ctx.Event()
            spec = {"target": vars(server.target), "n": count, "probe_every": max(1, n // PROBES), "offset": k * share,
                    "drain_every": drain_every, "loop": client_loop}  # fmt: skip
            proc = ctx.Process(
                target=peer_clients.run_clients,
                args=(spec, {"ready": ready, "measure": measure, "stop": stop}, results),
            )
            proc.start()
            procs.append(proc)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(180):
                raise RuntimeError(f"{peer}: clients did not all connect")
        idle_kib = (fanout.rss_bytes(server.pid) - rss_before) / n / 1024
        server.start()
        time.sleep(2)  # warm-up
        cpu_before = fanout.cpu_seconds(server.pid)
        measure.set()
        time.sleep(seconds)
        stop.set()
        cpu = fanout.cpu_seconds(server.pid) - cpu_before
        rss = fanout.rss_bytes(server.pid)
        server.stop()
        slowest = server.slowest_commit
        reports = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(30)
    messages = sum(r["messages"] for r in reports)
    window = statistics.mean(r["seconds"] for r in reports)
    lat = sorted(x for r in reports for x in r["latencies_ms"])
    return {
        "peer": peer if workers == 1 or not peer.startswith("hub") else f"{peer}x{workers}",
        "transport": transport_of(peer),
        "loop": loop_of(peer),
        "reading": reading if reading == "continuous" else f"drain {drain_every:g}s",
        "subscribers": n,
        "delivered_percent": round(100 * messages / (n * fanout.UPDATES_PER_SECOND * window), 1),
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 1) if lat else None,
        "server_cpu_percent": round(100 * cpu / seconds, 1),
        "client_cpu_percent": round(100 * sum(r["cpu_seconds"] for r in reports) / window, 1),
        "cpu_us_per_message": round(cpu * 1e6 / messages, 2) if messages else None,
        "kib_per_idle_connection": round(idle_kib, 1),
        "server_rss_mib": round(rss / 2**20),
        "clients_closed": sum(r["closed"] for r in reports),
        "writer_slowest_commit_ms": None if slowest is None else round(slowest[0] * 1000, 1),
        "load_before": round(load_before, 2),
    }


def with_ratios(rows: list[dict[str, Any]]) -> None:
    """CPU per message and p99 as multiples of the bare pre-built loop of the same transport,
    event loop, N, kind of reading and repetition."""
    for row in rows:
        floor = next(
            (r for r in rows if r["peer"] == floor_of(row["peer"]) and r["subscribers"] == row["subscribers"]
             and r["repetition"] == row["repetition"] and r["reading"] == row["reading"]),
            None,
        )  # fmt: skip
        for key, name in (("cpu_us_per_message", "cpu_ratio"), ("p99_ms", "p99_ratio")):
            ok = floor is not None and floor[key] and row[key] is not None
            row[name] = round(row[key] / floor[key], 2) if ok else None  # type: ignore[index]


def node_ready() -> bool:
    if shutil.which("node") is None:
        return False
    if not (BENCH / "node" / "node_modules" / "ws").is_dir() and shutil.which("npm"):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=BENCH / "node", check=False)
    return (BENCH / "node" / "node_modules" / "ws").is_dir()


def machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()}


def print_rows(rows: list[dict[str, Any]]) -> None:
    head = f"{'peer':<15} {'reading':<10} {'N':>5} {'rep':>3} {'deliv %':>7} {'p50 ms':>7} {'p99 ms':>8} {'CPU %':>6}"
    head += f" {'CPU us/msg':>10} {'x bare':>6} {'p99 x bare':>10} {'KiB/conn':>8} {'closed':>6}"
    print(head + f" {'client CPU %':>12} {'slowest commit ms':>17}")
    for r in rows:
        print(
            f"{r['peer']:<15} {r['reading']:<10} {r['subscribers']:>5} {r['repetition']:>3} {r['delivered_percent']:>7}"
            f" {r['p50_ms']!s:>7} {r['p99_ms']!s:>8} {r['server_cpu_percent']:>6} {r['cpu_us_per_message']!s:>10}"
            f" {r['cpu_ratio']!s:>6} {r['p99_ratio']!s:>10} {r['kib_per_idle_connection']:>8} {r['clients_closed']:>6}"
            f" {r['client_cpu_percent']:>12} {r['writer_slowest_commit_ms']!s:>17}"
        )


def print_medians(rows: list[dict[str, Any]]) -> None:
    """With --repeat: per peer, N and kind of reading, the median of each figure over the
    repetitions, and in brackets the lowest and highest of the CPU ratio (one noisy round on a
    shared machine moves a ratio by several hundredths)."""
    keys = sorted(
        {(r["subscribers"], r["reading"], r["peer"]) for r in rows}, key=lambda k: (k[0], k[1], peer_order(k[2]), k[2])
    )
    print(f"\nmedians over {max(r['repetition'] for r in rows)} repetitions")
    head = f"{'peer':<15} {'reading':<10} {'N':>5} {'deliv %':>7} {'p99 ms':>8} {'CPU us/msg':>10}"
    print(head + f" {'x bare':>6} {'(range)':>13} {'p99 x bare':>10} {'KiB/conn':>8}")
    for n, reading, peer in keys:
        group = [r for r in rows if r["peer"] == peer and r["subscribers"] == n and r["reading"] == reading]
        ratios = [r["cpu_ratio"] for r in group if r["cpu_ratio"] is not None]
        spread = f"({min(ratios)} to {max(ratios)})" if ratios else ""

        def med(key: str, group: list[dict[str, Any]] = group) -> Any:
            values = [r[key] for r in group if r[key] is not None]
            return round(statistics.median(values), 2) if values else None

        print(
            f"{peer:<15} {reading:<10} {n:>5} {med('delivered_percent')!s:>7} {med('p99_ms')!s:>8}"
            f" {med('cpu_us_per_message')!s:>10} {med('cpu_ratio')!s:>6} {spread:>13} {med('p99_ratio')!s:>10}"
            f" {med('kib_per_idle_connection')!s:>8}"
        )


def peer_order(peer: str) -> int:
    base = peer.rsplit("x", 1)[0] if peer.startswith("hub") and peer[-1].isdigit() else peer
    return PEERS.index(base) if base in PEERS else len(PEERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {', '.join(PEERS)}")
    parser.add_argument("--subscribers", default="1000,5000", help="comma-separated N")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per round")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of the whole set of rounds")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--reading", default=",".join(READINGS),
        help="how the counting clients read, comma-separated: drain (every --drain-every s) and/or continuous",
    )  # fmt: skip
    parser.add_argument(
        "--drain-every", type=float, default=0.2,
        help="seconds between reads of the counting clients in the drain mode (0: as continuous)",
    )  # fmt: skip
    parser.add_argument(
        "--client-loop", choices=("auto", "asyncio", "uvloop"), default="auto",
        help="the client processes' event loop; auto: uvloop when installed (cheaper per read: with asyncio's, "
        "5,000 continuously reading clients need more than the two cores leave them)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="serve --workers for the hub (CPU and RSS: all of them)")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peer(s): {', '.join(sorted(unknown))}")
    readings = [r for r in args.reading.split(",") if r]
    if not readings or set(readings) - set(READINGS):
        parser.error(f"--reading takes {' and/or '.join(READINGS)}, got {args.reading!r}")
    if any(loop_of(p) == "uvloop" for p in peers) and importlib.util.find_spec("uvloop") is None:
        print("the -uvloop peers skipped: uvloop is not installed (pip install -e '.[uvloop]')")
        peers = [p for p in peers if loop_of(p) != "uvloop"]
    for peer, module in (("websockets", "websockets"), ("socketio", "socketio")):
        if peer in peers and importlib.util.find_spec(module) is None:
            print(f"{peer} skipped: {module} is not installed (pip install -e '.[peers]')")
            peers.remove(peer)
    if "node-ws" in peers and not node_ready():
        print("node-ws skipped: no node on PATH, or `npm install` in bench/node failed")
        peers.remove("node-ws")
    if args.client_loop == "auto":
        args.client_loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    elif args.client_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.error("--client-loop uvloop: uvloop is not installed (pip install -e '.[uvloop]')")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # servers and clients inherit it
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    about = machine()
    about["client_loop"] = args.client_loop
    rows: list[dict[str, Any]] = []
    with harness.database() as dsn, tempfile.TemporaryDirectory(prefix="ch-peers-") as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_text(body_template(dsn))
        for repetition in range(1, args.repeat + 1):
            for n in (int(x) for x in args.subscribers.split(",")):
                for reading in readings:
                    for peer in peers:
                        row = run_round(
                            peer, n, args.seconds, dsn, body_file, args.client_processes, args.workers,
                            args.drain_every, reading, args.client_loop,
                        )  # fmt: skip
                        row["repetition"] = repetition
                        rows.append(row)
                        print(f"  {peer} {row['reading']} N={n} rep {repetition}: {row['cpu_us_per_message']} us/msg,"
                              f" {row['delivered_percent']} % delivered", flush=True)  # fmt: skip
    with_ratios(rows)
    about["load_after"] = os.getloadavg()
    print(f"\n{started}, {about['cpu']} ({about['cores']} cores, shared), Python {about['python']}; "
          f"load average {about['load'][0]:.1f} before, {about['load_after'][0]:.1f} after; "
          f"{fanout.UPDATES_PER_SECOND} updates/s, {args.seconds:g} s measured per round; "
          f"clients on {args.client_loop}'s event loop\n")  # fmt: skip
    print_rows(rows)
    if args.repeat > 1:
        print_medians(rows)
    out = harness.ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"peers-{started.replace(':', '')}.json").write_text(json.dumps({"machine": about, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
