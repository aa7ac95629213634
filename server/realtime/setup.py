"""Wiring live push into the app: the hub and its LISTEN connection for the life of the app,
streams ended at shutdown, and the SSE and WebSocket routes. The app hands in what the hub
reads (sources.py): realtime never imports the features above it.

The hub is set up before anything that registers with it: the runner and the webhook
dispatcher add their wake-ups to ``app[HUB].wake_ups`` in their own setup.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from aiohttp import web

from server.keys import DATABASE_URL, POOL, SETTINGS
from server.realtime.hub import Hub
from server.realtime.keys import HUB
from server.realtime.listener import Listener
from server.realtime.sources import LiveSources
from server.realtime.sse import routes as sse_routes
from server.realtime.ws import routes as ws_routes


async def realtime_ctx(app: web.Application, sources: LiveSources) -> AsyncIterator[None]:
    """The hub and its LISTEN connection, for the life of the app (needs the database)."""
    settings = app[SETTINGS]
    hub = Hub(app[POOL], sources=sources, cache_size=settings.state_cache_size, heartbeat=settings.stream_heartbeat)
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
        await hub.log_tails.close()
        await hub.variance_tail.close()


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every stream now (WebSockets with 1001) so that clients reconnect to
    another process instead of waiting for this one to time out."""
    hub = app.get(HUB)
    if hub is not None:
        hub.close()


def setup_realtime(app: web.Application, sources: LiveSources) -> None:
    """Call after the database context is registered: the hub needs the pool."""
    app.cleanup_ctx.append(functools.partial(realtime_ctx, sources=sources))
    app.on_shutdown.append(close_streams)
    app.add_routes(sse_routes)
    app.add_routes(ws_routes)
