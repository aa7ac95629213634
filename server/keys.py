"""Typed application keys of the resources every package shares. A package's own resource
(the hub, the runner, the dispatcher, the scheduler, the authenticator and the rate limiter)
has its key in that package's ``keys.py``, beside the class it holds, so that this module
imports nothing above the settings (docs/ARCHITECTURE.md, the layers)."""

from __future__ import annotations

import aiopg
from aiohttp import web

from collectors.registry import CollectorSpec
from server.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DATABASE_URL = web.AppKey("database_url", str)
POOL = web.AppKey("pool", aiopg.Pool)
REGISTRY = web.AppKey("registry", dict[str, CollectorSpec])

# Per request
REQUEST_ID = web.RequestKey("request_id", str)
