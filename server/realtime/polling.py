"""Polling that stays cheap: batch and job GETs answered from the hub's cache, with ETag/304
and long-poll (``?wait=N``, at most 30 s).

A long-poll returns as soon as the state differs from the one the client holds (its
``If-None-Match``, else the state when the request arrived), when the object is terminal, or
when the wait ends (then 304 if the client's ETag still matches, else the unchanged state).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from server.api.http_cache import client_seq, versioned_response
from server.api.validation import query_int
from server.errors import NotFoundError
from server.realtime.events import BatchSnapshot, Event
from server.realtime.hub import Hub
from server.realtime.keys import HUB

MAX_WAIT_SECONDS = 30


def answer(request: web.Request, event: Event, tag: str) -> web.Response:
    """The GET body (the exact bytes the streams carry) with its ETag, or 304."""
    return versioned_response(request, tag, event.seq, event.data)


async def _poll(request: web.Request, read: _Reader, tag: str) -> web.Response:
    hub = request.app[HUB]
    wait = query_int(request, "wait", 0, 0, MAX_WAIT_SECONDS)
    snapshot = await read(hub)
    event = read.pick(snapshot)
    baseline = client_seq(request, tag)
    if baseline is None:
        baseline = event.seq
    if wait and event.seq == baseline and not event.terminal and not hub.closing:
        deadline = time.monotonic() + wait
        async with hub.watching(snapshot.batch_id) as changed:
            while True:
                changed.clear()
                event = read.pick(await read(hub))
                remaining = deadline - time.monotonic()
                if event.seq != baseline or event.terminal or hub.closing or remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    event = read.pick(await read(hub))
                    break
    return answer(request, event, tag)


class _Reader:
    """Reads one object's batch snapshot through the hub and picks the object's event."""

    def __init__(self, kind: str, object_id: str) -> None:
        self.kind = kind
        self.object_id = object_id

    async def __call__(self, hub: Hub) -> BatchSnapshot:
        if self.kind == "batch":
            snapshot = await hub.current_batch(self.object_id)
        else:
            snapshot = await hub.current_job(self.object_id)
        if snapshot is None:
            raise NotFoundError("Batch not found" if self.kind == "batch" else "Job not found")
        return snapshot

    def pick(self, snapshot: BatchSnapshot) -> Event:
        return snapshot.batch if self.kind == "batch" else snapshot.jobs[self.object_id]


async def poll_batch(request: web.Request, batch_id: str) -> web.Response:
    return await _poll(request, _Reader("batch", batch_id), "b")


async def poll_job(request: web.Request, job_id: str) -> web.Response:
    return await _poll(request, _Reader("job", job_id), "j")
