"""Searching past runs: ``GET /api/collectors/history`` (jobs) and ``GET /api/collectors/batches``,
with the same filters and keyset cursors (server/runs/history.py says why pages never repeat
or skip a row)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from collectors.contract import BATCH_ID, JOB_ID, MAX_HISTORY
from server.api.roles import requires
from server.api.timestamps import utc_now
from server.api.validation import (
    accepts_query,
    check_batch_id,
    check_statuses,
    decode_cursor,
    encode_cursor,
    query_int,
    query_list,
    query_timestamp,
)
from server.errors import ValidationError
from server.keys import POOL
from server.runs import history
from server.runs import representation as rep
from server.runs.collector_filter import named_collectors

routes = web.RouteTableDef()

# How many runs GET /api/collectors/history answers without ?limit= (at most MAX_HISTORY).
DEFAULT_HISTORY = 10
# How many batches GET /api/collectors/batches answers without ?limit=.
DEFAULT_BATCHES = 20
HISTORY_QUERY = ("collectors", "status", "batch_id", "since", "until", "limit", "cursor")


async def _filters(request: web.Request) -> tuple[history.Filters, list[str]]:
    collectors, unconfigured = await named_collectors(request)
    batch_id = request.query.get("batch_id")
    since = query_timestamp(request, "since")
    until = query_timestamp(request, "until")
    if since is not None and until is not None and since > until:
        raise ValidationError("since must not be after until")
    filters = history.Filters(
        collectors=collectors,
        statuses=check_statuses(query_list(request, "status")),
        batch_id=None if batch_id is None else check_batch_id(batch_id.strip()),
        since=since,
        until=until,
    )
    return filters, unconfigured


async def _page(
    request: web.Request,
    read: Callable[..., Any],
    id_column: str,
    id_pattern: re.Pattern[str],
    default_limit: int,
) -> tuple[list[dict[str, Any]], str | None, list[str]]:
    filters, unconfigured = await _filters(request)
    limit = query_int(request, "limit", default_limit, 1, MAX_HISTORY)
    after = decode_cursor(request, id_pattern)
    position = None if after is None else history.Position(*after)
    rows = await read(request.app[POOL], filters, limit, position)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["started_at"], rows[-1][id_column])
    return rows, next_cursor, unconfigured


@routes.get("/api/collectors/history")
@requires("read")
@accepts_query(*HISTORY_QUERY)
async def get_history(request: web.Request) -> web.Response:
    rows, next_cursor, unconfigured = await _page(request, history.job_page, "job_id", JOB_ID, DEFAULT_HISTORY)
    entries = [rep.history_entry_json(row) for row in rows]
    return web.json_response(
        {
            "collection_history": entries,
            "total_runs": len(entries),
            "generated_at": utc_now(),
            "next_cursor": next_cursor,
            "unconfigured_collectors": unconfigured,
        }
    )


@routes.get("/api/collectors/batches")
@requires("read")
@accepts_query(*HISTORY_QUERY)
async def list_batches(request: web.Request) -> web.Response:
    rows, next_cursor, unconfigured = await _page(request, history.batch_page, "batch_id", BATCH_ID, DEFAULT_BATCHES)
    return web.json_response(
        {
            "batches": [rep.batch_summary_json(row) for row in rows],
            "total_batches": len(rows),
            "generated_at": utc_now(),
            "next_cursor": next_cursor,
            "unconfigured_collectors": unconfigured,
        }
    )
