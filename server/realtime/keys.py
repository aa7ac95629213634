"""The live-push hub's application key."""

from __future__ import annotations

from aiohttp import web

from server.realtime.hub import Hub

HUB: web.AppKey[Hub] = web.AppKey("hub")
