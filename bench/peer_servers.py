"""The peers of bench/peers.py, each a small server on 127.0.0.1 that sends the hub's batch
message to every connected client 20 times a second once it gets SIGUSR2.

    python bench/peer_servers.py bare-ws --port 8001 --body body.json [--loop uvloop]

    bare-ws     aiohttp WebSocket; one frame built per update, written to each transport
    bare-sse    aiohttp SSE (chunked); one chunk built per update, written to each transport
    naive-ws    aiohttp WebSocket; ``await ws.send_str(text)`` for each client in turn
    websockets  the websockets library, ``broadcast()``
    socketio    python-socketio on aiohttp, ``emit`` to a room every client joined

The body file holds the batch's GET JSON with ``BENCH_STAMP`` where the update's time (ns)
goes; every peer sends ``{"type": "batch", "seq": N, "data": <body>}`` (SSE: the hub's event
format), the same bytes the hub sends.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

UPDATES_PER_SECOND = 20


def ws_frame(payload: bytes) -> bytes:
    """One unmasked text frame (RFC 6455 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


class Messages:
    def __init__(self, body: str) -> None:
        self.body = body
        self.seq = 0

    def next(self) -> tuple[int, str]:
        self.seq += 1
        body = self.body.replace("BENCH_STAMP", str(time.time_ns()))
        return self.seq, '{"type": "batch", "seq": %d, "data": %s}' % (self.seq, body)  # noqa: UP031


async def tick(send: Callable[[int, str], Awaitable[None] | None], started: asyncio.Event, body: str) -> None:
    """Every 1/20 s after SIGUSR2: the next message, sent by ``send``."""
    await started.wait()
    messages = Messages(body)
    next_at = time.monotonic()
    while True:
        seq, text = messages.next()
        result = send(seq, text)
        if result is not None:
            await result
        next_at += 1 / UPDATES_PER_SECOND
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def aiohttp_peer(kind: str) -> tuple[web.Application, Callable[[int, str], Awaitable[None] | None]]:
    transports: set[asyncio.Transport] = set()
    sockets: set[web.WebSocketResponse] = set()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        transports.add(transport)
        sockets.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            transports.discard(transport)
            sockets.discard(ws)
        return ws

    async def sse_handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        transport = request.transport
        assert transport is not None
        transports.add(transport)
        try:
            await asyncio.get_running_loop().create_future()  # until the connection goes
        finally:
            transports.discard(transport)
        return response

    def send_frame(seq: int, text: str) -> None:
        frame = ws_frame(text.encode())
        for transport in list(transports):
            transport.write(frame)

    def send_chunk(seq: int, text: str) -> None:
        frame = b"id: %d\nevent: batch\ndata: %s\n\n" % (seq, text.encode())
        chunk = b"%x\r\n%s\r\n" % (len(frame), frame)
        for transport in list(transports):
            transport.write(chunk)

    async def send_naive(seq: int, text: str) -> None:
        for ws in list(sockets):
            try:
                await ws.send_str(text)
            except ConnectionError:
                pass

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/sse", sse_handler)
    send = {"bare-ws": send_frame, "bare-sse": send_chunk, "naive-ws": send_naive}[kind]
    return app, send


async def serve(kind: str, port: int, body: str) -> None:
    started = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR2, started.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if kind == "websockets":
        from websockets.asyncio.server import broadcast, serve as ws_serve  # noqa: I001  (an optional peer)

        connections: set[Any] = set()

        async def handler(connection: Any) -> None:
            connections.add(connection)
            try:
                await connection.wait_closed()
            finally:
                connections.discard(connection)

        server = await ws_serve(handler, "127.0.0.1", port, ping_interval=None, compression=None)
        ticker = asyncio.create_task(tick(lambda seq, text: broadcast(connections, text), started, body))
        await stop.wait()
        ticker.cancel()
        server.close()
        return
    if kind == "socketio":
        import socketio  # an optional peer

        sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=25, ping_timeout=60)
        app = web.Application()
        sio.attach(app)

        async def on_connect(sid: str, environ: Any) -> None:
            await sio.enter_room(sid, "batch")

        sio.on("connect", on_connect)
        send: Callable[[int, str], Awaitable[None] | None] = lambda seq, text: sio.emit(  # noqa: E731
            "batch", text, room="batch"
        )
    else:
        app, send = aiohttp_peer(kind)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ticker = asyncio.create_task(tick(send, started, body))
    await stop.wait()
    ticker.cancel()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("bare-ws", "bare-sse", "naive-ws", "websockets", "socketio"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop to run on")
    args = parser.parse_args()
    factory = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop  # only when asked for: a peer on asyncio's loop needs no uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.kind, args.port, args.body.read_text()))


if __name__ == "__main__":
    main()
