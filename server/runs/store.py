"""Reads and writes of runs in PostgreSQL (aiopg): rows out, never JSON (representation.py shapes them)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

import aiopg
import psycopg2
import psycopg2.errors

from collectors.contract import TERMINAL_STATUSES
from collectors.registry import CollectorSpec
from server.audit import store as audit_store
from server.audit.entry import AuditEntry
from server.db import database
from server.errors import ConflictError, NotFoundError

ID_ATTEMPTS = 8

# A batch's row and its jobs' rows, in position order.
BatchRows = tuple[dict[str, Any], list[dict[str, Any]]]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.randbelow(10**8):08d}"


async def create_batch(
    pool: aiopg.Pool,
    collectors: Sequence[CollectorSpec],
    priority: str,
    requested_by: str | None = None,
    *,
    rerun_of: str | None = None,
    rerun_jobs: Sequence[str] | None = None,
    audit: AuditEntry | None = None,
) -> BatchRows:
    """Queue one job per collector in a new batch; returns its rows. IDs are random and a
    collision (unique violation) retries the whole insert with fresh ones.

    A re-run names the batch it re-runs (``rerun_of``) and, per collector, the job
    (``rerun_jobs``, in the same order)."""
    for _ in range(ID_ATTEMPTS):
        try:
            async with database.transaction(pool) as cur:
                batch, jobs = await _insert_batch(
                    cur, collectors, priority, requested_by, rerun_of=rerun_of, rerun_jobs=rerun_jobs
                )
                if audit is not None:  # the change's own record (server/audit/), in its transaction
                    await audit_store.record(cur, audit.about(batch["batch_id"], *(j["job_id"] for j in jobs)))
        except psycopg2.errors.UniqueViolation:
            continue
        return batch, jobs
    raise RuntimeError("could not allocate unique run ids")


@dataclasses.dataclass(frozen=True)
class ScheduleStamp:
    """What a batch started by a schedule records: which one, and the due time it fired for
    (None for a "run now")."""

    schedule_id: str
    name: str
    due_at: dt.datetime | None


async def insert_batch(
    cur: Any,
    collectors: Sequence[CollectorSpec],
    priority: str,
    requested_by: str | None,
    schedule: ScheduleStamp | None = None,
) -> BatchRows:
    """``create_batch`` inside the caller's transaction (a savepoint retries an id collision
    without losing the rest of it); returns the batch's rows."""
    for _ in range(ID_ATTEMPTS):
        await cur.execute("SAVEPOINT new_batch")
        try:
            batch, jobs = await _insert_batch(cur, collectors, priority, requested_by, schedule)
        except psycopg2.errors.UniqueViolation:
            await cur.execute("ROLLBACK TO SAVEPOINT new_batch")
            continue
        await cur.execute("RELEASE SAVEPOINT new_batch")
        return batch, jobs
    raise RuntimeError("could not allocate unique run ids")


async def _insert_batch(
    cur: Any,
    collectors: Sequence[CollectorSpec],
    priority: str,
    requested_by: str | None,
    schedule: ScheduleStamp | None = None,
    *,
    rerun_of: str | None = None,
    rerun_jobs: Sequence[str] | None = None,
) -> BatchRows:
    stamp = (schedule.schedule_id, schedule.name, schedule.due_at) if schedule else (None, None, None)
    await cur.execute(
        "INSERT INTO job_batches (batch_id, priority, requested_by, message, schedule_id, schedule_name, scheduled_for,"
        " rerun_of) VALUES (%s, %s, %s, 'Queued', %s, %s, %s, %s) RETURNING *",
        (new_id("bc"), priority, requested_by, *stamp, rerun_of),
    )
    batch = await cur.fetchone()
    jobs = []
    in_batch = [spec.name for spec in collectors]
    for position, spec in enumerate(collectors):
        await cur.execute(
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name, position, priority,"
            " message, started_at, rerun_of, after_collectors, run_if, max_attempts, retry_delay, retry_backoff,"
            " retry_max_delay, retry_jitter, no_retry_exit_codes, runner_labels)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (new_id(spec.id_prefix), batch["batch_id"], spec.name, spec.display_name, position, priority,
             queued_message(spec, in_batch), batch["started_at"], rerun_jobs[position] if rerun_jobs else None,
             list(spec.after), spec.run_if, spec.max_attempts, spec.retry_delay, spec.retry_backoff,
             spec.retry_max_delay, spec.retry_jitter, list(spec.no_retry_exit_codes), list(spec.runner_labels)),
        )  # fmt: skip
        jobs.append(await cur.fetchone())
    await cur.execute("SELECT * FROM job_batches WHERE batch_id = %s", (batch["batch_id"],))
    return await cur.fetchone(), jobs


def queued_message(spec: CollectorSpec, in_batch: Sequence[str]) -> str:
    """A new job's message: what it waits for, when it runs after collectors in its batch."""
    waits_for = [name for name in spec.after if name in in_batch]
    if not waits_for:
        return "Queued"
    return f"Waiting for {', '.join(waits_for)} to end (then runs if {spec.run_if.replace('_', ' ')})"


# A batch and its jobs in one statement, hence one snapshot: under READ COMMITTED each statement
# of a transaction sees the commits made before it started, so two SELECTs, even between BEGIN
# and COMMIT, could pair a batch row with job rows of a later commit. ``jobs_follow`` marks
# where the batch's columns end and the job's begin (both tables have a batch_id and a status).
_BATCH_WITH_JOBS = """
    SELECT {columns}
      FROM job_batches b LEFT JOIN job_runs j ON j.batch_id = b.batch_id
     WHERE b.batch_id = {batch}
     ORDER BY j.position, j.job_id
"""


def batch_rows_statement(*, batch_id: str | None = None, job_id: str | None = None) -> tuple[str, tuple[str]]:
    """The one statement ``batch_rows`` runs, with its parameters; ``split_batch_rows``
    takes its result apart."""
    return _batch_with_jobs("b.*, NULL AS jobs_follow, j.*", batch_id, job_id)


def _batch_with_jobs(columns: str, batch_id: str | None, job_id: str | None) -> tuple[str, tuple[str]]:
    where = "%s" if batch_id is not None else "(SELECT batch_id FROM job_runs WHERE job_id = %s)"
    target = batch_id if batch_id is not None else job_id
    assert target is not None, "a batch id or a job id"
    return _BATCH_WITH_JOBS.format(columns=columns, batch=where), (target,)


def split_batch_rows(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> BatchRows | None:
    """The batch's row and its jobs' rows from ``batch_rows_statement``'s result (column
    ``names``, tuples); None when there is no such batch."""
    if not rows:
        return None
    split = names.index("jobs_follow")
    batch = dict(zip(names[:split], rows[0][:split], strict=True))
    job_names = names[split + 1 :]
    job_key = split + 1 + job_names.index("job_id")
    jobs = [dict(zip(job_names, row[split + 1 :], strict=True)) for row in rows if row[job_key] is not None]
    return batch, jobs


@database.read_only
async def batch_rows(pool: aiopg.Pool, *, batch_id: str | None = None, job_id: str | None = None) -> BatchRows | None:
    """The rows of batch ``batch_id`` (or of the batch of ``job_id``) and of its jobs, read in
    one snapshot, in one round trip; None when there is no such batch."""
    async with database.cursor(pool, tuples=True) as cur:
        await cur.execute(*batch_rows_statement(batch_id=batch_id, job_id=job_id))
        rows = await cur.fetchall()
        names = [column.name for column in cur.description]
    return split_batch_rows(names, rows)


# Per collector, its active job (queued or running), else its most recent one (``j``, with its
# batch ``b``): ``latest_jobs_statement`` with the columns to read.
_LATEST_JOBS = (
    "SELECT DISTINCT ON (j.collector) {columns} FROM job_runs j JOIN job_batches b USING (batch_id)"
    " WHERE j.collector = ANY(%s)"
    " ORDER BY j.collector, (j.status IN ('queued', 'running')) DESC, j.started_at DESC, j.job_id"
)


def latest_jobs_statement(columns: str) -> str:
    """The statement of each named collector's latest job (one parameter: the names), reading
    ``columns`` of ``j`` (the job) and ``b`` (its batch)."""
    return _LATEST_JOBS.format(columns=columns)


@database.read_only
async def batch_seqs(pool: aiopg.Pool, batch_ids: Sequence[str]) -> dict[str, int]:
    """Current seq of each batch that still exists."""
    async with database.cursor(pool) as cur:
        await cur.execute("SELECT batch_id, seq FROM job_batches WHERE batch_id = ANY(%s)", (list(batch_ids),))
        return {row["batch_id"]: int(row["seq"]) for row in await cur.fetchall()}


@database.read_only
async def batches_changed_since(pool: aiopg.Pool, seq: int, since: dt.datetime | None) -> dict[str, int]:
    """Batches whose seq is above ``seq`` or that changed after ``since`` (a transaction can
    commit after one that drew a higher seq, so the time bound catches late commits)."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT batch_id, seq FROM job_batches WHERE seq > %s OR updated_at >= %s",
            (seq, since or dt.datetime.now(dt.UTC)),
        )
        return {row["batch_id"]: int(row["seq"]) for row in await cur.fetchall()}


CANCELLED_MESSAGE = "Cancelled by request"


async def cancel_batch(pool: aiopg.Pool, batch_id: str, audit: AuditEntry | None = None) -> None:
    """Cancel every job of a batch that has not ended. A runner stops their processes."""
    async with database.transaction(pool) as cur:
        await cur.execute("SELECT status FROM job_batches WHERE batch_id = %s FOR UPDATE", (batch_id,))
        batch = await cur.fetchone()
        if batch is None:
            raise NotFoundError("Batch not found")
        if batch["status"] in TERMINAL_STATUSES:
            raise ConflictError(f"Batch is already {batch['status']}; terminal states are final")
        await cur.execute(
            "UPDATE job_runs SET status = 'cancelled', message = %s"
            " WHERE batch_id = %s AND NOT collector_hub_is_terminal(status)",
            (CANCELLED_MESSAGE, batch_id),
        )
        if audit is not None:
            await audit_store.record(cur, audit)


async def _lock_batch_of_job(cur: Any, job_id: str) -> None:
    """Lock the job's batch row, or NotFoundError. Every single-job writer takes the batch
    first, the order the batch refresh trigger needs, so a concurrent cancel of the batch
    and a write to one of its jobs never deadlock."""
    await cur.execute(
        "SELECT b.batch_id FROM job_batches b JOIN job_runs j USING (batch_id) WHERE j.job_id = %s FOR UPDATE OF b",
        (job_id,),
    )
    if await cur.fetchone() is None:
        raise NotFoundError("Job not found")


async def cancel_job(pool: aiopg.Pool, job_id: str, audit: AuditEntry | None = None) -> None:
    async with database.transaction(pool) as cur:
        await _lock_batch_of_job(cur, job_id)
        await cur.execute("SELECT status FROM job_runs WHERE job_id = %s FOR UPDATE", (job_id,))
        job = await cur.fetchone()
        if job["status"] in TERMINAL_STATUSES:
            raise ConflictError(f"Job is already {job['status']}; terminal states are final")
        await cur.execute(
            "UPDATE job_runs SET status = 'cancelled', message = %s WHERE job_id = %s",
            (CANCELLED_MESSAGE, job_id),
        )
        if audit is not None:
            await audit_store.record(cur, audit)


async def report_progress(
    pool: aiopg.Pool,
    job_id: str,
    status: str,
    percent: int | None,
    message: str | None,
    error: str | None = None,
) -> None:
    """A progress update for a job that has not ended (HTTP twin of
    ``collectors.progress.update_job_progress``)."""
    async with database.transaction(pool) as cur:
        await _lock_batch_of_job(cur, job_id)
        await cur.execute(
            "UPDATE job_runs SET status = %s, progress_percent = coalesce(%s, progress_percent),"
            " message = coalesce(%s, message), error = %s, last_progress_at = clock_timestamp()"
            " WHERE job_id = %s AND NOT collector_hub_is_terminal(status) RETURNING job_id",
            (status, percent, message, error, job_id),
        )
        if await cur.fetchone() is None:
            await cur.execute("SELECT status FROM job_runs WHERE job_id = %s", (job_id,))
            row = await cur.fetchone()
            raise ConflictError(f"Job is already {row['status']}; terminal states are final")
