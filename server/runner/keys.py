"""The in-process runner's application key."""

from __future__ import annotations

from aiohttp import web

from server.runner.runner import Runner

RUNNER: web.AppKey[Runner] = web.AppKey("runner")
