"""The variance reports (read role): status, the latest report, a day's report, the filtered
report, the available dates, a historical day and the trends. Days are UTC days; a past day is
answered from the variances' history (history.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from collectors.variance_settings import OPEN_STATUS, VARIANCE_TYPES
from server.api.roles import requires
from server.api.timestamps import format_timestamp, utc_now
from server.api.validation import accepts_query
from server.errors import NotFoundError, ValidationError
from server.keys import POOL
from server.variances import history, store
from server.variances import representation as rep
from server.variances.params import check_type, parse_date, path_date, query_bool, today

MAX_TREND_DAYS = 366
RECENT_FAILURES = 5
VENDOR_NAMES = {"ninja": "Ninja", "threatlocker": "ThreatLocker"}

routes = web.RouteTableDef()


@routes.get("/api/status")
@requires("read")
async def get_status(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    now = today()
    check = await store.latest_check(pool)
    sources = await store.source_status(pool)
    failures, failed = await store.recent_failures(pool, RECENT_FAILURES)
    counts = await store.counts(pool)
    open_counts = dict.fromkeys(VARIANCE_TYPES, 0)
    for row in counts:
        if row["status"] == OPEN_STATUS:
            open_counts[row["type"]] = int(row["n"])
    vendor_status = {VENDOR_NAMES[s]: rep.freshness(sources[s]["collected"], now) for s in VENDOR_NAMES}
    warnings = [
        f"{name} data is {status['days_old']} days old" if status["days_old"] is not None else f"{name} has no data"
        for name, status in vendor_status.items()
        if status["freshness_status"] in ("stale", "very_stale", "no_data")
    ]
    return web.json_response(
        {
            "data_status": rep.data_status(check, now),
            "device_counts": {VENDOR_NAMES[s]: int(sources[s]["devices"]) for s in VENDOR_NAMES},
            "vendor_status": vendor_status,
            "collector_health": {
                "recent_failures": [
                    {
                        "collector": r["collector"],
                        "job_name": r["job_name"],
                        "status": r["status"],
                        "message": r["message"],
                        "error": r["error"],
                        "started_at": format_timestamp(r["started_at"]),
                        "ended_at": format_timestamp(r["ended_at"]),
                    }
                    for r in failures
                ],
                "has_recent_failures": failed > 0,
                "total_failures_last_24h": failed,
            },
            "warnings": warnings,
            "has_warnings": bool(warnings),
            "exception_counts": open_counts,
            "total_exceptions": sum(open_counts.values()),
        }
    )


def _report(rows: list[dict[str, Any]], report_date: str, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "report_date": report_date,
        "summary": rep.summary_json(rows),
        "exceptions_by_type": rep.by_type_json(rows),
        "exception_counts": rep.counts_by_type(rows),
        "collection_info": info,
    }


async def _latest_check(request: web.Request) -> dict[str, Any]:
    check = await store.latest_check(request.app[POOL])
    if check is None:
        raise NotFoundError("No complete cross-vendor check has run yet (status out_of_sync)")
    return check


@routes.get("/api/variance-report/latest")
@requires("read")
@accepts_query("include_resolved")
async def latest_report(request: web.Request) -> web.Response:
    include_resolved = bool(query_bool(request, "include_resolved"))
    check = await _latest_check(request)
    now = today()
    rows = await store.current_variances(request.app[POOL], include_resolved)
    body = _report(rows, rep.day(check["finished_at"]) or "", rep.collection_info(check, now))
    body["data_status"] = rep.data_status(check, now)
    body.update(rep.blocks_json(rows))
    return web.json_response(body)


@routes.get("/api/variance-report/filtered")
@requires("read")
async def filtered_report(request: web.Request) -> web.Response:
    check = await _latest_check(request)
    now = today()
    rows = await store.current_variances(request.app[POOL], include_resolved=False)
    blocks = rep.blocks_json(rows)
    counts = rep.counts_by_type(rows)
    duplicates = blocks.pop("threatlocker_duplicates")
    body: dict[str, Any] = {
        "analysis_date": rep.day(check["finished_at"]),
        "total_devices": {"ninja": check["ninja_devices"], "threatlocker": check["threatlocker_devices"]},
        "total_variances": len(rows),
        "data_status": rep.data_status(check, now),
        "status": rep.data_status(check, now)["status"],
        "threatlocker_duplicates": {
            "total_count": duplicates["total_count"],
            "devices": [e for entries in duplicates["by_organization"].values() for e in entries],
        },
        **blocks,
        "actionable_insights": {
            "priority_actions": [
                {"type": t, "count": counts[t], "action": rep.ACTIONS[t]} for t in VARIANCE_TYPES if counts[t]
            ],
            "summary": counts,
        },
        "collection_info": rep.collection_info(check, now),
        "data_quality": {
            "total_exceptions": len(rows),
            "exception_types": sorted({r["type"] for r in rows}),
            "organizations_affected": len({r["organization"] or rep.UNKNOWN_ORGANIZATION for r in rows}),
        },
    }
    return web.json_response(body)


async def _day(request: web.Request, day: dt.date) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if day > today():
        raise NotFoundError(f"No report for {day.isoformat()}: it is in the future")
    check = await history.check_on(request.app[POOL], day)
    if check is None:
        raise NotFoundError(f"No complete cross-vendor check had run by the end of {day.isoformat()}")
    rows = await history.variances_on(request.app[POOL], day, bool(query_bool(request, "include_resolved")))
    return check, rows


def _check_info(check: dict[str, Any]) -> dict[str, Any]:
    return {"last_collection": format_timestamp(check["finished_at"]), "ninja_collected": None,
            "threatlocker_collected": None, "data_freshness": "historical"}  # fmt: skip


@routes.get("/api/variance-report/{date}")
@requires("read")
@accepts_query("include_resolved")
async def report_on(request: web.Request) -> web.Response:
    day = path_date(request)
    check, rows = await _day(request, day)
    return web.json_response(_report(rows, day.isoformat(), _check_info(check)))


@routes.get("/api/variances/historical/{date}")
@requires("read")
@accepts_query("include_resolved")
async def historical(request: web.Request) -> web.Response:
    day = path_date(request)
    check, rows = await _day(request, day)
    body = _report(rows, day.isoformat(), _check_info(check))
    latest = await store.latest_check(request.app[POOL])
    body["device_counts"] = {"Ninja": check["ninja_devices"], "ThreatLocker": check["threatlocker_devices"]}
    body["data_status"] = {
        "status": "historical",
        "message": f"The variances as they stood at the end of {day.isoformat()} (UTC)",
        "latest_date": rep.day(latest["finished_at"]) if latest else None,
    }
    body.update(rep.blocks_json(rows))
    return web.json_response(body)


@routes.get("/api/variances/available-dates")
@requires("read")
async def available_dates(request: web.Request) -> web.Response:
    now = today()
    rows = await history.available_dates(request.app[POOL], now)
    dates = []
    for row in rows:
        days_old = (now - row["day"]).days
        dates.append(
            {
                "date": row["day"].isoformat(),
                "ninja_devices": row["ninja_devices"],
                "threatlocker_devices": row["threatlocker_devices"],
                "total_exceptions": row["found"],
                "unresolved_exceptions": int(row["unresolved"]),
                "data_quality": "current" if days_old <= 1 else "recent" if days_old <= 3 else "stale",
                "days_old": days_old,
            }
        )
    return web.json_response(
        {
            "available_dates": dates,
            "date_range": {
                "earliest": dates[-1]["date"] if dates else None,
                "latest": dates[0]["date"] if dates else None,
            },
            "total_dates": len(dates),
        }
    )


@routes.get("/api/variances/trends")
@requires("read")
@accepts_query("start_date", "end_date", "type")
async def get_trends(request: web.Request) -> web.Response:
    raw_start, raw_end = request.query.get("start_date"), request.query.get("end_date")
    if raw_start is None or raw_end is None:
        raise ValidationError("start_date and end_date are required")
    start, end = parse_date(raw_start, "start_date"), parse_date(raw_end, "end_date")
    if start > end:
        raise ValidationError("start_date must not be after end_date")
    if (end - start).days >= MAX_TREND_DAYS:
        raise ValidationError(f"the range may span at most {MAX_TREND_DAYS} days")
    raw_type = request.query.get("type")
    variance_type = check_type(raw_type) if raw_type is not None else None
    rows = await history.trends(request.app[POOL], start, end, variance_type)
    by_date: dict[str, dict[str, Any]] = {}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        date = row["day"].isoformat()
        total, unresolved = int(row["total"]), int(row["unresolved"])
        counts = {"total": total, "unresolved": unresolved, "resolved": total - unresolved}
        by_date.setdefault(date, {})[row["type"]] = counts
        by_type.setdefault(row["type"], []).append({"date": date, **counts})
    total = sum(int(r["total"]) for r in rows)
    unresolved = sum(int(r["unresolved"]) for r in rows)
    return web.json_response(
        {
            "trends_by_date": by_date,
            "trends_by_type": by_type,
            "summary": {
                "total_exceptions": total,
                "total_unresolved": unresolved,
                "total_resolved": total - unresolved,
                "date_range": {"start": start.isoformat(), "end": end.isoformat()},
                "unique_dates": len(by_date),
                "unique_types": sorted(by_type),
            },
            "date_range": {
                "start_date": start.isoformat(),
                "end_date": end.isoformat(),
                "days": (end - start).days + 1,
            },
            "generated_at": utc_now(),
        }
    )
