"""Wiring webhooks into the app: the admin routes and the dispatcher's lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.background import startup_turn
from server.keys import POOL, SETTINGS
from server.realtime.keys import HUB
from server.webhooks import receiver_store
from server.webhooks.dispatcher import Dispatcher
from server.webhooks.keys import WEBHOOK_DISPATCHER
from server.webhooks.routes import routes

log = logging.getLogger(__name__)


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Upsert the settings-declared receivers, then run the dispatcher until shutdown."""
    settings = app[SETTINGS]
    async with startup_turn():  # in turn with the first ticks of the loops started before: one connection
        await receiver_store.upsert_declared(app[POOL], settings.webhooks)
    if settings.webhooks:
        log.info("%d webhook receiver(s) declared in settings", len(settings.webhooks))
    dispatcher = Dispatcher(app[POOL], settings)
    app[WEBHOOK_DISPATCHER] = dispatcher
    app[HUB].wake_ups.when_job_ended(dispatcher.wake)  # the job may have ended its batch: a delivery is due
    await dispatcher.start()
    try:
        yield
    finally:
        await dispatcher.stop()


def setup_webhooks(app: web.Application) -> None:
    """Call after the database and realtime contexts are registered: the dispatcher needs the
    pool, and registers its wake-up with the hub."""
    app.add_routes(routes)
    app.cleanup_ctx.append(webhooks_ctx)
