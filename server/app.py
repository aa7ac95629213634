"""The application factory and the lifetime of its resources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from collectors.registry import load_registry
from server.api.doc_routes import setup_docs_routes
from server.api.middleware import json_errors
from server.api.roles import requires
from server.api.run_routes import routes
from server.api.static_routes import setup_static_routes
from server.db import database
from server.keys import DATABASE_URL, HUB, POOL, RATE_LIMITER, REGISTRY, RUNNER, SETTINGS
from server.observability.access_log import access_log, add_request_id_header
from server.observability.metrics_route import setup_metrics_routes
from server.realtime import setup_realtime
from server.security import protected_mode_ctx, setup_security
from server.settings import Settings
from server.webhooks.setup import setup_webhooks

log = logging.getLogger(__name__)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the embedded PostgreSQL if no URL is set, migrate, open the pool."""
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    embedded = None
    if settings.database_url is None:
        embedded = database.EmbeddedPostgres(settings.data_dir)
        log.info("starting embedded PostgreSQL in %s", embedded.pgdata)
        dsn = await loop.run_in_executor(None, embedded.start)
    else:
        dsn = settings.database_url
    try:
        await loop.run_in_executor(None, database.apply_migrations, dsn)
        app[DATABASE_URL] = dsn
        async with database.create_pool(dsn, settings.db_pool_min, settings.db_pool_max) as pool:
            app[POOL] = pool
            yield
    finally:
        if embedded is not None:
            await loop.run_in_executor(None, embedded.stop)


async def runner_ctx(app: web.Application) -> AsyncIterator[None]:
    """The in-process runner: claims queued jobs and runs each collector in its own process."""
    settings = app[SETTINGS]
    if not settings.run_collectors:
        yield
        return
    from server.runner.runner import Runner

    runner = Runner(app[POOL], app[DATABASE_URL], app[REGISTRY], settings)
    app[RUNNER] = runner
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()


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
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    body = {"status": "ok", "database": "ok"}
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


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[access_log, json_errors], client_max_size=settings.max_body_bytes)
    app.on_response_prepare.append(add_request_id_header)
    app[SETTINGS] = settings
    app[REGISTRY] = load_registry(settings.collectors_file)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(protected_mode_ctx)  # before anything runs: no open server on a network
    setup_realtime(app)  # the hub and its LISTEN connection, before the runner it wakes
    app.cleanup_ctx.append(runner_ctx)
    app.add_routes(routes)
    setup_webhooks(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    setup_static_routes(app)
    setup_docs_routes(app)
    setup_metrics_routes(app)
    setup_security(app)  # last: it covers every route registered above
    return app
