"""``GET /api/collectors/runs/job/{job_id}/logs/events``: a job's log as Server-Sent Events.

The stored lines after ``Last-Event-ID`` (a line number; ``?lastEventId=`` or ``?after=`` on a
first connect) come first, then new lines as the runner stores them (server/realtime/log_tail.py), each as
``id: <line>``, ``event: log``, ``data: <the line's JSON, as GET .../logs lists it>``. Once the
job has ended and its last line is sent, an ``event: end`` with the job's status closes the
stream. A client that already has every line of an ended job gets 204, which stops
EventSource from reconnecting.
"""

from __future__ import annotations

import re

from aiohttp import web

from collectors.contract import TERMINAL_STATUSES
from server.api.roles import requires
from server.api.validation import accepts_query, path_job_id
from server.errors import ApiError, NotFoundError, ValidationError
from server.joblogs import store as logs
from server.keys import POOL
from server.realtime.keys import HUB
from server.realtime.tail_stream import serve_tail

routes = web.RouteTableDef()

RESUME_QUERY = ("lastEventId", "after")
_LINE = re.compile(r"[0-9]{1,15}")


def resume_line(request: web.Request) -> int:
    """The last line the client has: ``Last-Event-ID``, else ``?lastEventId=``/``?after=``; 0."""
    for name, raw in (
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
        *((name, request.query.get(name)) for name in RESUME_QUERY),
    ):
        if raw is not None and raw.strip():
            if not _LINE.fullmatch(raw.strip()):
                raise ValidationError(f"{name} must be a log line number (a non-negative integer), got {raw[:40]!r}")
            return int(raw)
    return 0


@routes.get("/api/collectors/runs/job/{job_id}/logs/events")
@requires("read")
@accepts_query(*RESUME_QUERY)
async def job_log_events(request: web.Request) -> web.StreamResponse:
    job_id = path_job_id(request)
    after = resume_line(request)
    hub = request.app[HUB]
    if hub.closing:
        raise ApiError("Server is shutting down; try again", status=503)
    found = await logs.read_lines(request.app[POOL], job_id, after, 1)
    if found is None:
        raise NotFoundError("Job not found")
    job, rows, _ = found
    if job["status"] in TERMINAL_STATUSES and not rows:
        return web.Response(status=204, headers={"Cache-Control": "no-cache"})
    return await serve_tail(request, hub.log_tails, job_id, after)
