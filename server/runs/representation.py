"""The JSON shapes of batches and jobs (docs/COLLECTOR_RUN_TRACKING_API.md) that Python builds
from table rows: history, the batch listing, the answers of starting a batch. The batch and job
GET bodies are PostgreSQL's (body_sql.py), which tests/test_live_bodies.py holds to this
module's job fields and ``started_by`` on random rows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from collectors.contract import JOB_STATUSES, TERMINAL_STATUSES
from server.api.timestamps import format_timestamp

Row = Mapping[str, Any]


def duration_seconds(row: Row) -> int | None:
    """Whole seconds from request to end; only for terminal runs."""
    if row["status"] not in TERMINAL_STATUSES or row["ended_at"] is None:
        return None
    elapsed: dt.timedelta = row["ended_at"] - row["started_at"]
    return max(0, round(elapsed.total_seconds()))


def format_duration(seconds: int | None) -> str | None:
    """``80`` -> ``"1m 20s"``; ``3725`` -> ``"1h 2m 5s"``."""
    if seconds is None:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def job_state_json(job: Row) -> dict[str, Any]:
    """What every shape of a job shows of it: the one list of a job's own fields (a batch's
    ``collectors``, a job's GET, a history entry)."""
    return {
        "job_id": job["job_id"],
        "job_name": job["job_name"],
        "collector": job["collector"],
        "status": job["status"],
        "started_at": format_timestamp(job["started_at"]),
        "updated_at": format_timestamp(job["updated_at"]),
        "ended_at": format_timestamp(job["ended_at"]),
        "progress_percent": job["progress_percent"],
        "message": job["message"],
        "error": job["error"],
        "duration_seconds": duration_seconds(job),
        "attempt": job["attempt"],
        "max_attempts": job["max_attempts"],
    }


def started_by_json(batch: Row) -> dict[str, Any]:
    """How a batch started (``kind`` is one of STARTED_BY_KINDS): a re-run names the batch it
    re-runs; a schedule's batch (fired, or "run now") the schedule; any other was started by
    hand and names the stored API key it was started with (null: none, a key from the
    settings, or a token). Read from the columns that say so, not stored twice."""
    if batch["rerun_of"] is not None:
        return {"kind": "rerun", "name": batch["rerun_of"]}
    if batch["schedule_id"] is not None:
        return {"kind": "schedule", "name": batch["schedule_name"]}
    return {"kind": "manual", "name": batch["requested_by"]}


def history_entry_json(job: Row) -> dict[str, Any]:
    """One row of ``GET /api/collectors/history``."""
    state = job_state_json(job)
    return {**state, "batch_id": job["batch_id"], "duration": format_duration(state["duration_seconds"])}


def created_batch_json(batch: Row, jobs: Sequence[Row]) -> dict[str, Any]:
    """``POST /api/collectors/run`` (201)."""
    return {
        "batch_id": batch["batch_id"],
        "status": batch["status"],
        "priority": batch["priority"],
        "collectors": [
            {
                "job_name": job["job_name"],
                "job_id": job["job_id"],
                "collector": job["collector"],
                "status": job["status"],
                "started_at": format_timestamp(job["started_at"]),
            }
            for job in jobs
        ],
    }


def cross_vendor_started_json(batch: Row, jobs: Sequence[Row]) -> dict[str, Any]:
    """``POST /api/collectors/cross-vendor/run`` (201): the created batch, with ``success`` and
    the checks job's id (the one job of the batch)."""
    return {
        "success": True,
        "message": "Cross-vendor checks queued",
        "job_id": jobs[0]["job_id"],
        **created_batch_json(batch, jobs),
    }


def batch_summary_json(batch: Row) -> dict[str, Any]:
    """One row of ``GET /api/collectors/batches``: the batch without its jobs' details, with
    how many of its jobs are in each status and which collectors they run."""
    seconds = duration_seconds(batch)
    counts = json.loads(batch["job_statuses"] or "{}")
    return {
        "batch_id": batch["batch_id"],
        "status": batch["status"],
        "priority": batch["priority"],
        "progress_percent": batch["progress_percent"],
        "started_at": format_timestamp(batch["started_at"]),
        "ended_at": format_timestamp(batch["ended_at"]),
        "message": batch["message"],
        "error": batch["error"],
        "collectors": list(batch["job_collectors"] or []),
        "job_statuses": {status: counts.get(status, 0) for status in JOB_STATUSES},
        "duration": format_duration(seconds),
        "duration_seconds": seconds,
        "rerun_of": batch["rerun_of"],
        "started_by": started_by_json(batch),
    }
