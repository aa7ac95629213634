"""Raw asyncio clients for bench/peers.py and bench/soak.py: one ``asyncio.Protocol`` per
connection, no client library, so that every server is read by the same cheap code.

A client speaks just enough of each protocol to be served (the WebSocket upgrade, the hub's
subscribe message, the Socket.IO connect packet, an SSE GET) and then counts messages by the
marker every update carries (``bench t=<ns>``, the time the update was made). A "probe" also
parses those times to measure latency. Clients answer aiohttp's heartbeat pings (an empty
ping frame) and Engine.IO's ping packet, so long rounds are not cut by the servers.

Once subscribed, the counting clients (every one but the probes) stop reading as each message
arrives and drain their sockets every ``drain_every`` seconds instead, several messages per
read: on a 2-core machine the load generator would otherwise take the CPU the servers need
(at N=5000, 100,000 reads a second). The kernel holds what arrives meanwhile (a few KiB per
socket), so a server writes the same bytes either way, though not at quite the same cost (a
client waiting on its socket is woken by every write, on the writer's CPU time); probes keep
reading at once, so latency is measured as before. With ``drain_every`` 0 (bench/peers.py
``--reading continuous``) every client reads each message as it arrives, as a live dashboard
does, and bench/peers.py measures both kinds.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any, cast

MARKER = b"bench t="
_STAMP = re.compile(rb"bench t=(\d+)\D")
_WS_PING = b"\x89\x00"  # aiohttp's heartbeat: an empty ping frame (never inside ASCII JSON text)
_EIO_PING = b"\x81\x012"  # Engine.IO 4 ping packet "2" in a one-byte text frame
_DRAIN_BYTES = 256 * 1024


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client frame (RFC 6455 5.2: clients mask); payloads here are short."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


@dataclasses.dataclass
class Target:
    """What to ask for: ``protocol`` is ws, sse or socketio; ``path`` the request path;
    ``hello`` the frames to send once upgraded (the hub's subscribe, Socket.IO's connect);
    ``ready`` the bytes that say the subscription is on (None: the upgrade is enough)."""

    protocol: str
    host: str
    port: int
    path: str
    hello: list[bytes] = dataclasses.field(default_factory=list)
    ready: bytes | None = None

    def request(self) -> bytes:
        head = f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if self.protocol == "sse":
            return (head + "Accept: text/event-stream\r\n\r\n").encode()
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            head + "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()


class Tally:
    """Counts shared by the clients of one process."""

    def __init__(self) -> None:
        self.messages = 0
        self.ready = 0
        self.closed = 0
        self.latencies_ms: list[float] = []
        self.measuring = False


class Client(asyncio.Protocol):
    def __init__(
        self, target: Target, tally: Tally, probe: bool, on_data: Callable[[bytes], None] | None = None
    ) -> None:
        self.target = target
        self.tally = tally
        self.probe = probe
        self.on_data = on_data
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.upgraded = False
        self.is_ready = False
        self.tail = b""
        self.stamps = b""
        self.ready_at: float | None = None  # wall clock, when the subscription was on
        self.closed_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, but has its methods
        self.transport.write(self.target.request())

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.closed += 1
        self.closed_at = time.time()

    def drain(self) -> None:
        """Read what the socket holds, without waiting (reading is paused: see the module)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        fd = transport.get_extra_info("socket").fileno()
        while True:
            try:
                data = os.read(fd, _DRAIN_BYTES)
            except BlockingIOError:
                return
            except OSError:
                transport.abort()
                return
            if not data:
                transport.abort()  # the server closed: connection_lost counts it
                return
            self.data_received(data)
            if len(data) < _DRAIN_BYTES:
                return

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head.split(b"\r\n", 1)[0]
            if b" 101 " not in status and b" 200 " not in status:
                raise RuntimeError(f"refused: {status[:200]!r}")
            self.upgraded = True
            data, self.head = self.head[end + 4 :], b""
            assert self.transport is not None
            for frame in self.target.hello:
                self.transport.write(frame)
            if self.target.ready is None:
                self._ready()
        buf = self.tail + data
        if not self.is_ready and self.target.ready is not None and self.target.ready in buf:
            self._ready()
        tally = self.tally
        if tally.measuring:
            tally.messages += buf.count(MARKER)
        if self.target.protocol != "sse":
            if _WS_PING in buf:
                self._send(masked_frame(b"", 0xA))
            if _EIO_PING in buf:
                self._send(masked_frame(b"3"))
        if self.probe:
            self._stamps(data)
        if self.on_data is not None:
            self.on_data(data)
        self.tail = buf[-(len(MARKER) - 1) :]

    def _send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def _ready(self) -> None:
        if not self.is_ready:
            self.is_ready = True
            self.ready_at = time.time()
            self.tally.ready += 1

    def _stamps(self, data: bytes) -> None:
        buf = self.stamps + data
        now = time.time_ns()
        end = 0
        for match in _STAMP.finditer(buf):
            end = match.end()
            if self.tally.measuring:
                stamp = int(match.group(1))
                if stamp:
                    self.tally.latencies_ms.append((now - stamp) / 1e6)
        self.stamps = buf[max(end, len(buf) - 40) :]


async def connect_all(
    target: Target, n: int, tally: Tally, probe_every: int, *, wave: int = 200, offset: int = 0
) -> list[Client]:
    """``n`` clients, connected in waves (the listen backlog is finite); every
    ``probe_every``-th one (counting from ``offset``) is a probe."""
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    for start in range(0, n, wave):

        def factory(probe: bool) -> Callable[[], Client]:
            return lambda: Client(target, tally, probe)

        batch = [
            loop.create_connection(factory((offset + i) % probe_every == 0), target.host, target.port)
            for i in range(start, min(n, start + wave))
        ]
        for _, client in await asyncio.gather(*batch):
            clients.append(client)
        await asyncio.sleep(0.02)
    return clients


def hub_target(protocol: str, port: int, batch_id: str) -> Target:
    if protocol == "ws":
        hello = [masked_frame(json.dumps({"op": "subscribe", "batch_id": batch_id}).encode())]
        return Target("ws", "127.0.0.1", port, "/api/ws", hello, b'"type": "subscribed"')
    return Target("sse", "127.0.0.1", port, f"/api/collectors/runs/batch/{batch_id}/events", [], b"retry:")


def peer_target(protocol: str, port: int) -> Target:
    if protocol == "socketio":
        path = "/socket.io/?EIO=4&transport=websocket"
        return Target("socketio", "127.0.0.1", port, path, [masked_frame(b"40")], b"40{")
    return Target(protocol, "127.0.0.1", port, "/sse" if protocol == "sse" else "/ws")


async def drain(clients: list[Client], every: float) -> None:
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        next_at += every
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        for client in clients:
            client.drain()


def run_clients(spec: dict[str, Any], control: Any, results: Any) -> None:
    """A client process: connect ``spec["n"]`` clients, say ready, count between the
    orchestrator's ``measure`` and ``stop`` events, then report."""

    async def main() -> None:
        target = Target(**spec["target"])
        tally = Tally()
        clients = await connect_all(target, spec["n"], tally, spec["probe_every"], offset=spec["offset"])
        deadline = time.monotonic() + 120
        while tally.ready < len(clients):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {tally.ready} of {len(clients)} clients subscribed")
            await asyncio.sleep(0.05)
        drain_every = spec.get("drain_every")
        if drain_every:
            counters = [c for c in clients if not c.probe and c.transport is not None]
            for client in counters:
                assert client.transport is not None
                client.transport.pause_reading()
            drainer = asyncio.create_task(drain(counters, drain_every))
        control["ready"].set()
        await asyncio.to_thread(control["measure"].wait)
        tally.measuring = True
        began, cpu_began = time.monotonic(), time.process_time()
        await asyncio.to_thread(control["stop"].wait)
        tally.measuring = False
        elapsed, cpu = time.monotonic() - began, time.process_time() - cpu_began
        if drain_every:
            drainer.cancel()
        results.put({"messages": tally.messages, "seconds": elapsed, "cpu_seconds": cpu,
                     "latencies_ms": tally.latencies_ms, "closed": tally.closed, "clients": len(clients)})  # fmt: skip
        for client in clients:
            client.close()

    if spec.get("loop") == "uvloop":
        import uvloop  # the optional extra: bench/peers.py checks it is installed

        uvloop.run(main())
    else:
        asyncio.run(main())
