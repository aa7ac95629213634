"""Operating figures: per-collector statistics (``GET /api/collectors/stats``) and the runners
(``GET /api/runners``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from collectors.contract import (
    JOB_STATUSES,
    MAX_STATS_WINDOW_SECONDS,
    MIN_STATS_WINDOW_SECONDS,
    RUNNER_LIVE_SECONDS,
    TERMINAL_STATUSES,
)
from server.api.roles import requires
from server.api.timestamps import format_timestamp, utc_now
from server.api.validation import accepts_query, query_window
from server.keys import POOL, REGISTRY
from server.runs import runners, stats
from server.runs.collector_filter import named_collectors

routes = web.RouteTableDef()

DEFAULT_WINDOW = "7d"
# Windows up to this long get an hourly series; longer ones a daily series.
HOURLY_UP_TO_SECONDS = 2 * 24 * 3600


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _buckets(since: dt.datetime, now: dt.datetime, step: dt.timedelta) -> list[tuple[dt.datetime, str]]:
    """Every bucket's start from the window's start to now, with its text: the same for every
    collector, so formatted once per request (a 90-day answer has 20 collectors' 91 points)."""
    bucket = since.replace(minute=0, second=0, microsecond=0)
    if step.days:
        bucket = bucket.replace(hour=0)
    out = []
    while bucket <= now:
        out.append((bucket, format_timestamp(bucket) or ""))
        bucket += step
    return out


def _series(rows: list[dict[str, Any]], buckets: list[tuple[dt.datetime, str]]) -> list[Any]:
    """Every bucket, empty ones included (charts need them)."""
    found = {row["bucket"]: row for row in rows}
    points = []
    for bucket, start in buckets:
        row = found.get(bucket)
        if row is None:
            points.append({"start": start, "runs": 0, "failed": 0, "median_duration_seconds": None})
            continue
        points.append(
            {
                "start": start,
                "runs": int(row["runs"]),
                "failed": int(row["failed"]),
                "median_duration_seconds": _seconds(row["median_duration"]),
            }
        )
    return points


@routes.get("/api/collectors/stats")
@requires("read")
@accepts_query("window", "collectors")
async def get_stats(request: web.Request) -> web.Response:
    window, seconds = query_window(request, MIN_STATS_WINDOW_SECONDS, MAX_STATS_WINDOW_SECONDS, DEFAULT_WINDOW)
    named, unconfigured = await named_collectors(request)
    now = dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(seconds=seconds)
    unit = "hour" if seconds <= HOURLY_UP_TO_SECONDS else "day"
    summary, series, last = await stats.collector_stats(request.app[POOL], since, unit, named)
    registry = request.app[REGISTRY]
    names = named or sorted(set(registry) | set(summary))
    buckets = _buckets(since, now, dt.timedelta(hours=1) if unit == "hour" else dt.timedelta(days=1))
    collectors = []
    for name in names:
        row = summary.get(name, {})
        ended = sum(int(row.get(s, 0)) for s in TERMINAL_STATUSES)
        outcome = last.get(name, {})
        collectors.append(
            {
                "collector": name,
                "configured": name in registry,
                "runs": int(row.get("runs", 0)),
                "by_status": {s: int(row.get(s, 0)) for s in JOB_STATUSES},
                "success_rate": round(int(row["completed"]) / ended, 4) if ended else None,
                "duration_seconds": {
                    "p50": _seconds(row.get("duration_p50")),
                    "p95": _seconds(row.get("duration_p95")),
                    "max": _seconds(row.get("duration_max")),
                },
                "queue_wait_seconds": {"p50": _seconds(row.get("wait_p50")), "p95": _seconds(row.get("wait_p95"))},
                "last_success": None
                if outcome.get("success_job_id") is None
                else {"job_id": outcome["success_job_id"], "ended_at": format_timestamp(outcome["success_at"])},
                "last_failure": None
                if outcome.get("failure_job_id") is None
                else {
                    "job_id": outcome["failure_job_id"],
                    "ended_at": format_timestamp(outcome["failure_at"]),
                    "error": outcome["failure_error"],
                },
                "series": _series(series.get(name, []), buckets),
            }
        )
    return web.json_response(
        {
            "window": window,
            "since": format_timestamp(since),
            "generated_at": utc_now(),
            "interval": unit,
            "collectors": collectors,
            "unconfigured_collectors": unconfigured,
        }
    )


@routes.get("/api/runners")
@requires("read")
async def list_runners(request: web.Request) -> web.Response:
    rows = await runners.list_runners(request.app[POOL])
    return web.json_response(
        {
            "runners": [
                {
                    "runner_id": row["runner_id"],
                    "host": row["host"],
                    "collectors": list(row["collectors"]),
                    "labels": list(row["labels"]),
                    "without_credentials": list(row["without_credentials"]),
                    "capacity": row["capacity"],
                    "running_jobs": list(row["running_jobs"]),
                    "started_at": format_timestamp(row["started_at"]),
                    "last_heartbeat": format_timestamp(row["heartbeat_at"]),
                    "stopped_at": format_timestamp(row["stopped_at"]),
                    "live": row["live"],
                }
                for row in rows
            ],
            "live_after_silence_seconds": RUNNER_LIVE_SECONDS,
            "generated_at": utc_now(),
        }
    )
