"""``/api/variances/export/csv`` and ``/excel`` (read role): the latest variances, or a day's,
as a file to download (exports.py), filtered as ``GET /api/exceptions`` filters its list (type,
status, organization, q), so a console exports exactly what it shows."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from server.api.roles import requires
from server.api.timestamps import utc_now
from server.api.validation import accepts_query, check_text
from server.errors import NotFoundError
from server.keys import POOL
from server.variances import exports, history, store
from server.variances.params import MAX_HOSTNAME, MAX_TEXT, parse_date, query_bool, query_statuses, query_types, today
from server.variances.representation import day

EXPORT_PARAMETERS = ("date", "include_resolved", "variance_type", "type", "status", "organization", "q")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

routes = web.RouteTableDef()


def _filter(request: web.Request) -> store.ExceptionFilter:
    """The filter of the query, checked as ``GET /api/exceptions`` checks its own. ``status``
    (comma-separated), when given, decides which statuses; else the open variances only, or
    every status with ``include_resolved`` (checked either way)."""
    statuses = query_statuses(request)
    include_resolved = query_bool(request, "include_resolved")
    organization = check_text("organization", request.query.get("organization"), MAX_TEXT)
    q = check_text("q", request.query.get("q"), MAX_HOSTNAME)
    return store.ExceptionFilter(
        types=query_types(request, "variance_type", "type"),
        statuses=statuses,
        resolved=None if statuses or include_resolved else False,
        organization=organization,
        q=q.strip() or None if q is not None else None,
    )


async def _rows(request: web.Request) -> tuple[list[dict[str, Any]], str, str]:
    """The rows, the report date and the file name's stem."""
    flt = _filter(request)
    raw_date = request.query.get("date", "latest")
    pool = request.app[POOL]
    if raw_date == "latest":
        check = await store.latest_check(pool)
        if check is None:
            raise NotFoundError("No complete cross-vendor check has run yet (status out_of_sync)")
        rows = await store.matching_variances(pool, flt)
        report_date = day(check["finished_at"]) or ""
    else:
        on = parse_date(raw_date)
        if on > today() or await history.check_on(pool, on) is None:
            raise NotFoundError(f"No complete cross-vendor check had run by the end of {on.isoformat()}")
        everything = await history.variances_on(pool, on, flt.resolved is None)
        rows = [r for r in everything if store.passes(flt, r)]
        report_date = on.isoformat()
    kind = f"{'-'.join(t.lower() for t in flt.types)}-" if flt.types else ""
    return rows, report_date, f"variances-{kind}{report_date}"


def _attachment(body: bytes, content_type: str, name: str) -> web.Response:
    return web.Response(
        body=body,
        content_type=content_type,
        charset="utf-8" if content_type == "text/csv" else None,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@routes.get("/api/variances/export/csv")
@requires("read")
@accepts_query(*EXPORT_PARAMETERS)
async def export_csv(request: web.Request) -> web.Response:
    rows, _, stem = await _rows(request)
    body = await asyncio.to_thread(exports.to_csv, rows)
    return _attachment(body, "text/csv", f"{stem}.csv")


@routes.get("/api/variances/export/excel")
@requires("read")
@accepts_query(*EXPORT_PARAMETERS)
async def export_excel(request: web.Request) -> web.Response:
    rows, report_date, stem = await _rows(request)
    body = await asyncio.to_thread(exports.to_xlsx, rows, report_date, utc_now())
    return _attachment(body, XLSX, f"{stem}.xlsx")
