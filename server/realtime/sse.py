"""Server-Sent Events: ``/api/collectors/runs/batch/{id}/events``,
``/api/collectors/runs/job/{id}/events`` and ``/api/collectors/events?collectors=...``.

Each event is ``id: <seq>``, ``event: batch|job``, ``data: <the GET JSON>``. The current state
comes first (only if newer than ``Last-Event-ID`` / ``?lastEventId=``), then every change; a
batch or job stream ends after its terminal state. A client that already has the terminal
state gets 204, which tells EventSource to stop reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from aiohttp import web

from server.api.roles import requires
from server.api.validation import accepts_query, collector_list, path_batch_id, path_job_id
from server.errors import ApiError, ValidationError
from server.keys import HUB, REGISTRY, SETTINGS
from server.observability.metrics import SLOW_SUBSCRIBERS_DROPPED
from server.realtime.events import Event
from server.realtime.subscriber import Subscriber
from server.realtime.subscriptions import Subscription

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
HEARTBEAT = b": heartbeat\n\n"
_SEQ = re.compile(r"[0-9]{1,18}")
# Where a first connect (which cannot set Last-Event-ID) says what it already has.
RESUME_QUERY = ("lastEventId", "since")


def resume_seq(request: web.Request) -> int | None:
    """``Last-Event-ID`` (what EventSource sends on reconnect), else ``?lastEventId=`` (a first
    connect cannot set headers), else ``?since=``."""
    raw = request.headers.get("Last-Event-ID")
    name = "Last-Event-ID"
    if raw is None or not raw.strip():
        for name in RESUME_QUERY:
            raw = request.query.get(name)
            if raw is not None:
                break
    if raw is None or not raw.strip():
        return None
    if not _SEQ.fullmatch(raw.strip()):
        raise ValidationError(f"{name} must be a seq (a non-negative integer), got {raw[:40]!r}")
    return int(raw)


async def stream(request: web.Request, kind: str, target: str | frozenset[str], *, ends: bool) -> web.StreamResponse:
    """Subscribe (errors answer as JSON: nothing has been sent yet), then stream."""
    since = resume_seq(request)
    hub = request.app[HUB]
    settings = request.app[SETTINGS]
    if hub.closing:
        raise ApiError("Server is shutting down; try again", status=503)
    subscriber = Subscriber(settings.stream_outbox_limit, f"SSE {request.path}", "sse")
    sub = await hub.follow(subscriber, kind, target, since)
    try:
        if sub.ended and subscriber.pending == 0:
            return web.Response(status=204, headers={"Cache-Control": "no-cache"})
        hub.connect(subscriber)
        try:
            return await _stream(request, subscriber, sub, ends=ends)
        finally:
            hub.disconnect(subscriber)
    finally:
        hub.unsubscribe(sub)


async def _stream(request: web.Request, subscriber: Subscriber, sub: Subscription, *, ends: bool) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    try:
        response = web.StreamResponse(headers=SSE_HEADERS)
        response.enable_chunked_encoding()
        await response.prepare(request)
        await _write(response, b"retry: %d\n\n" % settings.stream_retry_ms, settings.stream_send_timeout)
        # Events whose stream goes on are written straight to the socket (one shared chunk);
        # a terminal one goes through this loop, which ends the stream after it.
        subscriber.write_directly(request.transport, Event.sse_chunk, terminal=not ends)
        while True:
            item = await subscriber.next(wait=settings.stream_heartbeat)
            if item is None:
                if subscriber.closed:
                    await _say_goodbye(response, subscriber.close_reason or "closed")
                    log.info("SSE %s ended: %s", request.path, subscriber.close_reason)
                    break
                await _write(response, HEARTBEAT, settings.stream_send_timeout)
                continue
            assert isinstance(item, Event)
            await _write(response, item.sse_frame(), settings.stream_send_timeout)
            if ends and item.terminal and sub.covers(item):
                break
        return response
    except TimeoutError:
        SLOW_SUBSCRIBERS_DROPPED.labels("sse").inc()
        log.warning(
            "SSE %s: client accepted nothing for %gs; disconnected (it resumes from its last id)",
            request.path,
            settings.stream_send_timeout,
        )
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError from None
    except (ConnectionResetError, ConnectionError):
        raise asyncio.CancelledError from None


async def _write(response: web.StreamResponse, data: bytes, seconds: float) -> None:
    await asyncio.wait_for(response.write(data), seconds)


async def _say_goodbye(response: web.StreamResponse, reason: str) -> None:
    """A comment saying why the stream ends; best effort (the client may be the reason)."""
    text = reason.replace("\n", " ").encode("utf-8", "replace")
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(response.write(b": closing: %s\n\n" % text), 1.0)


@routes.get("/api/collectors/runs/batch/{batch_id}/events")
@requires("read")
@accepts_query(*RESUME_QUERY)
async def batch_events(request: web.Request) -> web.StreamResponse:
    batch_id = path_batch_id(request)
    return await stream(request, "batch", batch_id, ends=True)


@routes.get("/api/collectors/runs/job/{job_id}/events")
@requires("read")
@accepts_query(*RESUME_QUERY)
async def job_events(request: web.Request) -> web.StreamResponse:
    job_id = path_job_id(request)
    return await stream(request, "job", job_id, ends=True)


@routes.get("/api/collectors/events")
@requires("read")
@accepts_query("collectors", *RESUME_QUERY)
async def collector_events(request: web.Request) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    names = frozenset(collector_list(request.query.get("collectors"), registry) or registry)
    return await stream(request, "collectors", names, ends=False)
