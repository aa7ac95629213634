"""``GET /api/me``: who the server takes the caller to be, and what that caller may do.

The console reads it once at start instead of probing its rights with real requests. It
needs the ``read`` role like any other read; in open mode every caller is admin."""

from __future__ import annotations

from aiohttp import web

from server.api.roles import requires
from server.security.keys import PRINCIPAL
from server.security.representation import me_json

routes = web.RouteTableDef()


@routes.get("/api/me")
@requires("read")
async def me(request: web.Request) -> web.Response:
    return web.json_response(me_json(request[PRINCIPAL]))
