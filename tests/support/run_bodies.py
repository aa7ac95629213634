"""The batch and job GET bodies shaped in Python from table rows: the copy tests hold
PostgreSQL's bodies (server/runs/body_sql.py, what the GETs, live push, the answers of changes
and the webhooks send) to, on random rows (tests/test_live_bodies.py). It is built on
server/runs/representation.py's job fields and ``started_by``, which history and the batch
listing show, so the test holds those to the SQL too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import aiopg

from server.api.timestamps import format_timestamp
from server.db import database
from server.runs import representation as rep

Row = Mapping[str, Any]

# A job joined with the summary of its batch, as the job GET shows it.
_JOB_WITH_BATCH = """
    SELECT j.*, b.status AS batch_status, b.progress_percent AS batch_progress_percent,
           b.estimated_completion AS batch_estimated_completion, b.message AS batch_message,
           b.seq AS batch_seq
      FROM job_runs j JOIN job_batches b USING (batch_id) WHERE j.job_id = %s
"""


async def fetch_job(pool: aiopg.Pool, job_id: str) -> dict[str, Any] | None:
    """A job's row joined with its batch's summary (its columns prefixed ``batch_``), or None."""
    async with database.cursor(pool) as cur:
        await cur.execute(_JOB_WITH_BATCH, (job_id,))
        job: dict[str, Any] | None = await cur.fetchone()
    return job


# The columns each shape reads: ``batch_json`` reads BATCH_COLUMNS of the batch and JOB_COLUMNS
# of each job (tests/test_live_reads.py holds the shapes to these lists).
BATCH_COLUMNS = (
    "batch_id", "status", "priority", "progress_percent", "estimated_completion", "started_at", "updated_at",
    "ended_at", "message", "error", "rerun_of", "requested_by", "schedule_id", "schedule_name", "scheduled_for",
)  # fmt: skip
JOB_COLUMNS = (
    "job_id", "job_name", "collector", "status", "started_at", "updated_at", "ended_at", "progress_percent",
    "message", "error", "attempt", "max_attempts", "rerun_of",
)  # fmt: skip


def batch_job_json(job: Row, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job as it appears in a batch's ``collectors`` list (``state``: its
    ``job_state_json``, when already made)."""
    return {**(rep.job_state_json(job) if state is None else state), "rerun_of": job["rerun_of"]}


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
        "duration_seconds": rep.duration_seconds(batch),
        "schedule": batch_schedule_json(batch),
        "rerun_of": batch["rerun_of"],
        "started_by": rep.started_by_json(batch),
    }


def batch_and_job_json(batch: Row, jobs: Sequence[Row]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``batch_json(batch, jobs)`` and each job's ``job_json``, from the batch's row and its
    jobs' own rows, each job's fields shaped once: live push makes every body of a batch from
    one read."""
    states = [rep.job_state_json(job) for job in jobs]
    summary = _batch_summary(
        batch["batch_id"], batch["status"], batch["progress_percent"], batch["estimated_completion"], batch["message"]
    )
    return batch_json(batch, jobs, states), [
        _job_with_batch(state, summary, job) for state, job in zip(states, jobs, strict=True)
    ]


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
    return _job_with_batch(rep.job_state_json(job), summary, job)


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
