"""The webhook dispatcher's application key."""

from __future__ import annotations

from aiohttp import web

from server.webhooks.dispatcher import Dispatcher

WEBHOOK_DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("webhook_dispatcher")
