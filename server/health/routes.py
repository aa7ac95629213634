"""``GET /api/collectors/health``: each configured collector's last success, its age, its
failures in a row and its state (server/health/rules.py), read now from the facts."""

from __future__ import annotations

from aiohttp import web

from server.api.roles import requires
from server.health.current import current_states
from server.health.representation import health_json
from server.keys import POOL, REGISTRY

routes = web.RouteTableDef()


@routes.get("/api/collectors/health")
@requires("read")
async def collectors_health(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    states = await current_states(request.app[POOL], registry)
    entries = [health_json(s.collector, s.facts, s.policy, s.state, s.now) for s in states]
    return web.json_response({"collectors": entries})
