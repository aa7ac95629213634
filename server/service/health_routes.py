"""``/healthz`` (the process answers) and ``/readyz`` (this node should get traffic)."""

from __future__ import annotations

import logging

from aiohttp import web

from server import __version__
from server.api.roles import requires
from server.db import database
from server.keys import POOL
from server.realtime.keys import HUB
from server.security.keys import RATE_LIMITER

log = logging.getLogger(__name__)


@requires("public")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@requires("public")
async def readyz(request: web.Request) -> web.Response:
    try:
        async with database.cursor(request.app[POOL]) as cur:
            await cur.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"; say which part
        log.warning("readiness check failed: %s", exc)
        return web.json_response(
            {"status": "unavailable", "database": "unreachable", "version": __version__}, status=503
        )
    body = {"status": "ok", "database": "ok", "version": __version__}
    # Live push needs the LISTEN connection: while it reconnects, clients are better served
    # by another node (their streams would stall until the resync).
    hub = request.app.get(HUB)
    body["listener"] = hub.listener.state if hub is not None and hub.listener is not None else "stopped"
    # Reported, but not a reason to leave the load balancer: rate limits fail open without it.
    redis_ok = await request.app[RATE_LIMITER].redis_ok()
    if redis_ok is not None:
        body["redis"] = "ok" if redis_ok else "unreachable"
    if body["listener"] != "listening":
        body["status"] = "unavailable"
        return web.json_response(body, status=503)
    return web.json_response(body)


def setup_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
