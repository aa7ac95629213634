"""A tail (server/realtime/log_tail.py) served as Server-Sent Events: a job's log
(server/joblogs/stream.py) and the variances' changes (server/variances/stream.py) are both
numbered streams that resume by ``Last-Event-ID``, and are served by this one loop."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from server.keys import SETTINGS
from server.observability.metrics import SLOW_SUBSCRIBERS_DROPPED
from server.realtime.events import Control
from server.realtime.keys import HUB
from server.realtime.log_tail import LogBatch, LogFollower, LogTails
from server.realtime.sse import HEARTBEAT, SSE_HEADERS
from server.realtime.subscriber import Subscriber


async def serve_tail(request: web.Request, tail: LogTails, key: str, position: int) -> web.StreamResponse:
    """Follow ``key`` of ``tail`` from ``position`` until the client goes, the server stops or
    (a job's log) the stream is complete: then an ``event: end`` with the job's status."""
    hub = request.app[HUB]
    settings = request.app[SETTINGS]
    subscriber = Subscriber(settings.stream_outbox_limit, f"SSE {request.path}", "sse")
    ending: list[bytes] = []

    def finish(batch: LogBatch) -> None:
        ending.append(b"event: end\ndata: %s\n\n" % json.dumps(batch.end_message()).encode())
        subscriber.close("the job has ended and every line was sent", drain=True)

    follower = LogFollower(
        key,
        position,
        deliver=lambda batch, start: subscriber.send_control(Control(batch.sse(start))),
        finish=finish,
        gone=lambda: subscriber.close("the job was deleted"),
    )
    response = web.StreamResponse(headers=SSE_HEADERS)
    hub.connect(subscriber)
    tail.follow(follower)
    try:
        await response.prepare(request)
        await _write(response, b"retry: %d\n\n" % settings.stream_retry_ms, settings.stream_send_timeout)
        while True:
            item = await subscriber.next(wait=settings.stream_heartbeat)
            if item is None:
                if subscriber.closed:
                    break
                await _write(response, HEARTBEAT, settings.stream_send_timeout)
                continue
            assert isinstance(item, Control)
            await _write(response, item.data, settings.stream_send_timeout)
        for chunk in ending:
            await _write(response, chunk, settings.stream_send_timeout)
        return response
    except TimeoutError:
        SLOW_SUBSCRIBERS_DROPPED.labels("sse").inc()
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError from None
    except ConnectionError:
        raise asyncio.CancelledError from None
    finally:
        tail.unfollow(follower)
        hub.disconnect(subscriber)


async def _write(response: web.StreamResponse, data: bytes, seconds: float) -> None:
    async with asyncio.timeout(seconds):  # not wait_for: no task per message of a client behind
        await response.write(data)
