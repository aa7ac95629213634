"""The JSON shapes of batches and jobs (docs/COLLECTOR_RUN_TRACKING_API.md), built from table rows.

One function per shape, so the answers of changes, webhooks and listings send the same
thing. Live push and the batch and job GETs send the same shapes built by PostgreSQL
(body_sql.py); tests/test_live_bodies.py holds the two equal on random rows.
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


# The columns each shape reads: ``batch_json`` reads BATCH_COLUMNS of the batch and JOB_COLUMNS
# of each job (tests/test_live_reads.py holds the shapes to these lists). body_sql.py builds the
# same shapes in SQL for live push and the batch and job GETs; tests/test_live_bodies.py holds
# the two equal.
BATCH_COLUMNS = (
    "batch_id", "status", "priority", "progress_percent", "estimated_completion", "started_at", "updated_at",
    "ended_at", "message", "error", "rerun_of", "requested_by", "schedule_id", "schedule_name", "scheduled_for",
)  # fmt: skip
JOB_COLUMNS = (
    "job_id", "job_name", "collector", "status", "started_at", "updated_at", "ended_at", "progress_percent",
    "message", "error", "attempt", "max_attempts", "rerun_of",
)  # fmt: skip


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


def batch_job_json(job: Row, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job as it appears in a batch's ``collectors`` list (``state``: its
    ``job_state_json``, when already made)."""
    return {**(job_state_json(job) if state is None else state), "rerun_of": job["rerun_of"]}


def batch_json(batch: Row, jobs: Sequence[Row], job_states: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``GET /api/collectors/runs/batch/{id}`` (``job_states``: each job's
    ``job_state_json``, when already made)."""
    return {
        "batch_id": batch["batch_id"],
        "status": batch["status"],
        "priority": batch["priority"],
        "progress_percent": batch["progress_percent"],
        "estimated_completion": format_timestamp(batch["estimated_completion"]),
        "started_at": format_timestamp(batch["started_at"]),
        "updated_at": format_timestamp(batch["updated_at"]),
        "ended_at": format_timestamp(batch["ended_at"]),
        "message": batch["message"],
        "error": batch["error"],
        "collectors": [batch_job_json(job, job_states[i] if job_states else None) for i, job in enumerate(jobs)],
        "duration_seconds": duration_seconds(batch),
        "schedule": batch_schedule_json(batch),
        "rerun_of": batch["rerun_of"],
        "started_by": started_by_json(batch),
    }


def batch_and_job_json(batch: Row, jobs: Sequence[Row]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``batch_json(batch, jobs)`` and each job's ``job_json``, from the batch's row and its
    jobs' own rows, each job's fields shaped once: live push makes every body of a batch from
    one read."""
    states = [job_state_json(job) for job in jobs]
    summary = _batch_summary(
        batch["batch_id"], batch["status"], batch["progress_percent"], batch["estimated_completion"], batch["message"]
    )
    return batch_json(batch, jobs, states), [
        _job_with_batch(state, summary, job) for state, job in zip(states, jobs, strict=True)
    ]


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


def batch_schedule_json(batch: Row) -> dict[str, Any] | None:
    """The schedule that started a batch and the due time it fired for (null: not scheduled;
    ``due_at`` null: started with "run now")."""
    if batch.get("schedule_id") is None:
        return None
    return {
        "schedule_id": batch["schedule_id"],
        "name": batch["schedule_name"],
        "due_at": format_timestamp(batch["scheduled_for"]),
    }


def job_json(job: Row) -> dict[str, Any]:
    """``GET /api/collectors/runs/job/{id}``: the job with its batch's summary.

    ``job`` carries the batch's columns prefixed ``batch_``.
    """
    summary = _batch_summary(
        job["batch_id"],
        job["batch_status"],
        job["batch_progress_percent"],
        job["batch_estimated_completion"],
        job["batch_message"],
    )
    return _job_with_batch(job_state_json(job), summary, job)


def _batch_summary(
    batch_id: str, status: str, progress_percent: int, estimated_completion: dt.datetime | None, message: str | None
) -> dict[str, Any]:
    """What a job's GET shows of its batch."""
    return {
        "batch_id": batch_id,
        "batch_status": status,
        "batch_progress_percent": progress_percent,
        "estimated_completion": format_timestamp(estimated_completion),
        "batch_message": message,
    }


def _job_with_batch(state: dict[str, Any], summary: dict[str, Any], job: Row) -> dict[str, Any]:
    return {**state, **summary, "rerun_of": job["rerun_of"]}


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
