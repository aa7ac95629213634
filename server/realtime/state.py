"""Reading push state from the tables: a whole batch in one transaction, so one read serves
the batch's event and every one of its jobs' events (a job's GET body shows its batch's
summary, so every batch change is a new version of each of its jobs)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiopg

from server.api import representation as rep
from server.db import database
from server.realtime.events import BatchSnapshot, Event, batch_event, job_event

_BATCH_BY_ID = "SELECT * FROM job_batches WHERE batch_id = %s"
_BATCH_BY_JOB = "SELECT * FROM job_batches WHERE batch_id = (SELECT batch_id FROM job_runs WHERE job_id = %s)"
_JOBS = "SELECT * FROM job_runs WHERE batch_id = %s ORDER BY position, job_id"


def _job_row_with_batch(job: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """The row ``store.fetch_job`` gets from its join, built from rows already read."""
    return {
        **job,
        "batch_status": batch["status"],
        "batch_progress_percent": batch["progress_percent"],
        "batch_estimated_completion": batch["estimated_completion"],
        "batch_message": batch["message"],
        "batch_seq": batch["seq"],
    }


def snapshot_from_rows(batch: dict[str, Any], jobs: Sequence[dict[str, Any]]) -> BatchSnapshot:
    seq = int(batch["seq"])
    job_events = {job["job_id"]: job_event(rep.job_json(_job_row_with_batch(job, batch)), seq) for job in jobs}
    return BatchSnapshot(batch["batch_id"], seq, batch_event(rep.batch_json(batch, jobs), seq), job_events)


@database.read_only
async def read_batch_snapshot(
    pool: aiopg.Pool, *, batch_id: str | None = None, job_id: str | None = None
) -> BatchSnapshot | None:
    """The batch ``batch_id`` (or the batch of ``job_id``) with its jobs, or None."""
    async with database.transaction(pool) as cur:  # one snapshot for batch and jobs
        if batch_id is not None:
            await cur.execute(_BATCH_BY_ID, (batch_id,))
        else:
            await cur.execute(_BATCH_BY_JOB, (job_id,))
        batch = await cur.fetchone()
        if batch is None:
            return None
        await cur.execute(_JOBS, (batch["batch_id"],))
        jobs = await cur.fetchall()
    return snapshot_from_rows(batch, jobs)


@database.read_only
async def read_latest_run_events(pool: aiopg.Pool, collectors: Sequence[str]) -> list[Event]:
    """Per collector, its active run else its most recent one (what ``/runs/latest`` shows), as
    job events in seq order."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT DISTINCT ON (j.collector) j.*, b.status AS batch_status,"
            " b.progress_percent AS batch_progress_percent,"
            " b.estimated_completion AS batch_estimated_completion, b.message AS batch_message,"
            " b.seq AS batch_seq"
            " FROM job_runs j JOIN job_batches b USING (batch_id) WHERE j.collector = ANY(%s)"
            " ORDER BY j.collector, (j.status IN ('queued', 'running')) DESC, j.started_at DESC, j.job_id",
            (list(collectors),),
        )
        rows = await cur.fetchall()
    events = [job_event(rep.job_json(row), int(row["batch_seq"])) for row in rows]
    events.sort(key=lambda e: e.seq)
    return events


@database.read_only
async def read_batch_seqs(pool: aiopg.Pool, batch_ids: Sequence[str]) -> dict[str, int]:
    """Current seq of each batch that still exists."""
    async with database.cursor(pool) as cur:
        await cur.execute("SELECT batch_id, seq FROM job_batches WHERE batch_id = ANY(%s)", (list(batch_ids),))
        return {row["batch_id"]: int(row["seq"]) for row in await cur.fetchall()}


@database.read_only
async def read_batches_changed_since(pool: aiopg.Pool, seq: int, since: dt.datetime | None) -> dict[str, int]:
    """Batches whose seq is above ``seq`` or that changed after ``since`` (a transaction can
    commit after one that drew a higher seq, so the time bound catches late commits)."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT batch_id, seq FROM job_batches WHERE seq > %s OR updated_at >= %s",
            (seq, since or dt.datetime.now(dt.UTC)),
        )
        return {row["batch_id"]: int(row["seq"]) for row in await cur.fetchall()}
