"""``GET /api/variances/events``: the variances' changes as Server-Sent Events (docs/LIVE_PUSH.md,
"The variances").

Each page of changes starts with ``event: counts`` (the open counts, no id), then one
``id: <seq>``, ``event: variance``, ``data: <the change>`` per change: its seq, from and to
status, who, and the variance as ``GET /api/exceptions`` lists it. A client resumes after the
last seq it had (``Last-Event-ID``, or ``?lastEventId=``/``?since=`` on a first connect);
without one it starts from now. The stream does not end.
"""

from __future__ import annotations

from aiohttp import web

from server.api.roles import requires
from server.api.validation import accepts_query
from server.errors import ApiError
from server.keys import POOL
from server.realtime.keys import HUB
from server.realtime.log_tail import VARIANCES_KEY
from server.realtime.sse import RESUME_QUERY, resume_seq
from server.realtime.tail_stream import serve_tail
from server.variances.live import VARIANCES

routes = web.RouteTableDef()


@routes.get("/api/variances/events")
@requires("read")
@accepts_query(*RESUME_QUERY)
async def variance_events(request: web.Request) -> web.StreamResponse:
    since = resume_seq(request)
    hub = request.app[HUB]
    if hub.closing:
        raise ApiError("Server is shutting down; try again", status=503)
    position = since if since is not None else await VARIANCES.latest_seq(request.app[POOL])
    return await serve_tail(request, hub.variance_tail, VARIANCES_KEY, position)
