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
from server.compat import StreamServedAfterItsHandler
from server.errors import ApiError, ValidationError
from server.keys import REGISTRY, SETTINGS
from server.observability.access_log import request_id_of
from server.observability.metrics import SLOW_SUBSCRIBERS_DROPPED
from server.realtime.events import Event, http_chunk
from server.realtime.hub import Hub
from server.realtime.keys import HUB
from server.realtime.subscriber import Subscriber
from server.realtime.subscriptions import Subscription
from server.settings import Settings

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
HEARTBEAT = b": heartbeat\n\n"
CLIENT_GONE = "the client closed the connection"
HEARTBEAT_CHUNK = http_chunk(HEARTBEAT)  # as it goes on the wire
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
    """Subscribe (errors answer as JSON: nothing has been sent yet), start the stream, and
    return it: aiohttp serves it once the handler has returned (see EventStream)."""
    since = resume_seq(request)
    hub = request.app[HUB]
    settings = request.app[SETTINGS]
    if hub.closing:
        raise ApiError("Server is shutting down; try again", status=503)
    subscriber = Subscriber(settings.stream_outbox_limit, f"SSE {request.path}", "sse")
    sub = await hub.follow(subscriber, kind, target, since)
    if sub.ended and subscriber.pending == 0:
        hub.unsubscribe(sub)
        return web.Response(status=204, headers={"Cache-Control": "no-cache"})
    response = EventStream(hub, settings, subscriber, sub, ends, request_id_of(request))
    try:
        response.enable_chunked_encoding()
        await response.prepare(request)
        await _write(response, b"retry: %d\n\n" % settings.stream_retry_ms, settings.stream_send_timeout)
    except BaseException as exc:
        hub.unsubscribe(sub)
        if isinstance(exc, ConnectionError | TimeoutError):
            raise asyncio.CancelledError from None  # the client left: nobody to answer
        raise
    # Events whose stream goes on are written straight to the socket (one shared chunk); a
    # terminal one goes through the writer, which ends the stream after it.
    subscriber.write_directly(request.transport, terminal=not ends)
    return response


class EventStream(StreamServedAfterItsHandler):
    """One SSE stream once started: the response aiohttp serves, and its subscription.

    As with the WebSocket session (realtime/ws.py), the handler returns the stream once it
    has started and ``serve`` serves it to its end, after the handler has returned
    (server/compat.py): an idle stream holds no frame of the handler or of the middleware
    chain. The access log line is written when the stream starts.
    """

    __slots__ = ("ends", "hub", "request_id", "settings", "sub", "subscriber")  # no instance dict entries

    def __init__(
        self, hub: Hub, settings: Settings, subscriber: Subscriber, sub: Subscription, ends: bool, request_id: str
    ) -> None:
        self.hub = hub
        self.request_id = request_id
        self.settings = settings
        self.subscriber = subscriber
        self.sub: Subscription | None = sub
        self.ends = ends
        super().__init__(headers=SSE_HEADERS)

    async def serve(self) -> None:
        sub, self.sub = self.sub, None
        assert sub is not None  # served once
        self.headers.clear()  # sent when the stream started and never read again
        hub, subscriber, settings = self.hub, self.subscriber, self.settings
        hub.connect(subscriber)
        hub.heartbeat.add(self)
        try:
            while True:
                item = await subscriber.next()
                if item is None:  # closed
                    if subscriber.close_reason == CLIENT_GONE:
                        break  # nobody to tell
                    await _say_goodbye(self, subscriber.close_reason or "closed")
                    log.info(
                        "%s ended: %s",
                        subscriber.description,
                        subscriber.close_reason,
                        extra={"request_id": self.request_id},
                    )
                    break
                assert isinstance(item, Event)
                await _write(self, item.sse_frame(), settings.stream_send_timeout)
                if self.ends and item.terminal and sub.covers(item):
                    break
            await self.finish()
        except TimeoutError:
            SLOW_SUBSCRIBERS_DROPPED.labels("sse").inc()
            log.warning(
                "%s: client accepted nothing for %gs; disconnected (it resumes from its last id)",
                subscriber.description,
                settings.stream_send_timeout,
                extra={"request_id": self.request_id},
            )
            self.force_close()
            subscriber.abort_connection()
        except ConnectionError:
            self.force_close()
        finally:
            hub.heartbeat.discard(self)
            hub.disconnect(subscriber)
            hub.unsubscribe(sub)

    def beat(self) -> None:
        """The hub's heartbeat (realtime/heartbeat.py): a comment that keeps proxies from closing
        an idle stream; skipped while something is being written (the stream is not idle then).
        A stream whose client has gone ends here: nothing else would wake an idle one."""
        if not self.subscriber.write_now(HEARTBEAT_CHUNK) and self.subscriber.connection_gone:
            self.subscriber.close(CLIENT_GONE)


async def _write(response: web.StreamResponse, data: bytes, seconds: float) -> None:
    async with asyncio.timeout(seconds):  # not wait_for: no task per message of a client behind
        await response.write(data)


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
