"""Live push (issue 3): PostgreSQL LISTEN/NOTIFY -> one hub per process -> SSE, WebSocket and
long-poll clients. See docs/LIVE_PUSH.md for the protocols."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.keys import DATABASE_URL, HUB, POOL, RUNNER, SETTINGS, WEBHOOK_DISPATCHER
from server.realtime.hub import Hub
from server.realtime.listener import Listener

log = logging.getLogger(__name__)


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub and its LISTEN connection, for the life of the app."""
    settings = app[SETTINGS]

    def wake_runner() -> None:
        runner = app.get(RUNNER)
        if runner is not None:
            runner.wake()

    def wake_webhook_dispatcher() -> None:
        dispatcher = app.get(WEBHOOK_DISPATCHER)
        if dispatcher is not None:
            dispatcher.wake()

    hub = Hub(
        app[POOL],
        cache_size=settings.state_cache_size,
        on_job_queued=wake_runner,
        on_job_ended=wake_webhook_dispatcher,
    )
    listener = Listener(
        app[DATABASE_URL],
        hub.on_notify,
        hub.on_listening,
        ping_interval=settings.listener_ping_interval,
        max_backoff=settings.listener_max_backoff,
    )
    hub.attach(listener)
    app[HUB] = hub
    await listener.start()
    try:
        yield
    finally:
        hub.close()
        await listener.stop()


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every stream now (WebSockets with 1001) so that clients reconnect to
    another process instead of waiting for this one to time out."""
    hub = app.get(HUB)
    if hub is not None:
        hub.close()


def setup_realtime(app: web.Application) -> None:
    from server.realtime.sse import routes as sse_routes
    from server.realtime.ws import routes as ws_routes

    app.cleanup_ctx.append(realtime_ctx)
    app.on_shutdown.append(close_streams)
    app.add_routes(sse_routes)
    app.add_routes(ws_routes)
