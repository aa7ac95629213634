"""The audit trail's request key: who is asking (set by the security middleware)."""

from __future__ import annotations

from aiohttp import web

from server.audit.actor import Actor

ACTOR: web.RequestKey[Actor] = web.RequestKey("audit_actor")
