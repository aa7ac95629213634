"""``GET /api/audit`` (admin): the audit trail, newest first, filtered, a page at a time."""

from __future__ import annotations

import re

from aiohttp import web

from server.api.roles import requires
from server.api.validation import accepts_query, query_int, query_timestamp
from server.audit import store
from server.audit.entry import OUTCOMES
from server.audit.representation import audit_json
from server.errors import ValidationError
from server.keys import POOL

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_FILTER_CHARS = 300
ACTION_FILTER = re.compile(r"^[a-z_]+(\.[a-z_]+)*\.?$")
CURSOR = re.compile(r"^[1-9][0-9]{0,17}$")
routes = web.RouteTableDef()


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not value or len(value) > MAX_FILTER_CHARS or "\x00" in value:
        raise ValidationError(f"{name} must be 1 to {MAX_FILTER_CHARS} characters")
    return value


def filters_of(request: web.Request) -> store.Filters:
    action = _text(request, "action")
    if action is not None and not ACTION_FILTER.match(action):
        raise ValidationError("action must be an action such as schedule.create, or a prefix such as schedule.")
    outcome = request.query.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValidationError(f"outcome must be one of {', '.join(OUTCOMES)}")
    return store.Filters(
        actor=_text(request, "actor"),
        action=action,
        target=_text(request, "target"),
        outcome=outcome,
        since=query_timestamp(request, "since"),
        until=query_timestamp(request, "until"),
    )


@routes.get("/api/audit")
@requires("admin")
@accepts_query("actor", "action", "target", "outcome", "since", "until", "cursor", "limit")
async def list_audit(request: web.Request) -> web.Response:
    filters = filters_of(request)
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    raw_cursor = request.query.get("cursor")
    if raw_cursor is not None and not CURSOR.match(raw_cursor):
        raise ValidationError("cursor is not valid: pass the next_cursor of a previous page unchanged")
    before = None if raw_cursor is None else int(raw_cursor)
    rows = await store.list_entries(request.app[POOL], filters, before, limit + 1)
    page = rows[:limit]
    next_cursor = str(page[-1]["audit_id"]) if len(rows) > limit else None
    return web.json_response({"entries": [audit_json(r) for r in page], "next_cursor": next_cursor})
