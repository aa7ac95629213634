"""The job queue in SQL: claiming queued jobs, recording what became of them, the watchdog,
and settling jobs a dead runner left behind.

Locking: every job change also locks the job's batch (the refresh trigger recomputes it), so
a plain ``UPDATE job_runs`` locks job then batch, while ``store.cancel_batch``/``cancel_job``
lock batch then job. To never deadlock with a cancel, every writer here locks the batch first:
single-job writes with an explicit ``SELECT ... FOR UPDATE OF b``, multi-row statements with
``FOR UPDATE OF b, j SKIP LOCKED`` (which never waits at all). A deadlock with some other
writer is retried.

Every status change is guarded with ``NOT collector_hub_is_terminal(status)``: a collector's
own final report, a cancellation or the watchdog's verdict is never overwritten. The trigger
would refuse it anyway (SQLSTATE CH001); the guard turns that into "nothing to do".
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiopg
import psycopg2
import psycopg2.errors

from server.db import database

T = TypeVar("T")
RETRYABLE = (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure)
ATTEMPTS = 4
# The trigger's "terminal states are final" and "bad transition" errors.
RULE_VIOLATIONS = frozenset({"CH001", "CH002"})

PRIORITY_ORDER = "(CASE j.priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END)"
# What else a queued job ``j`` needs before a runner may take it: no job it runs after is still
# active in its batch (sql/010: once they have all ended, a job whose run_if failed is already
# cancelled, in the same commit as the last of them). An ended job never becomes active again,
# so a claim that sees them ended can never be early.
CLAIMABLE = """NOT EXISTS (
                           SELECT 1 FROM job_runs d
                            WHERE d.batch_id = j.batch_id AND d.job_id <> j.job_id
                              AND d.collector = ANY(j.after_collectors)
                              AND NOT collector_hub_is_terminal(d.status))
                       AND (j.not_before IS NULL OR j.not_before <= clock_timestamp())"""
# A transaction that records the end of an attempt says so: a failure with attempts left then
# sends the job back to the queue (sql/010, collector_hub_attempt_failed).
ENDING_ATTEMPT = "SET LOCAL collector_hub.ending_attempt = 'on'"


@dataclasses.dataclass(frozen=True)
class ClaimedJob:
    job_id: str
    batch_id: str
    collector: str
    attempt: int = 1
    max_attempts: int = 1


@dataclasses.dataclass(frozen=True)
class JobState:
    """What a runner checks of a job it runs: is it still this runner's attempt?"""

    status: str
    runner_id: str | None
    attempt: int


@dataclasses.dataclass(frozen=True)
class RunningJob:
    """A running job as settling sees it."""

    job_id: str
    runner_id: str | None
    host: str | None
    pid: int | None


async def _retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a transaction again when PostgreSQL aborted it to break a deadlock."""
    for n in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except RETRYABLE:
            if n == ATTEMPTS:
                raise
            await asyncio.sleep(0.01 * n)
    raise AssertionError("unreachable")


async def claim_jobs(
    pool: aiopg.Pool,
    limit: int,
    runner_id: str,
    host: str,
    collectors: Sequence[str],
    busy: Sequence[str] = (),
    labels: Sequence[str] = (),
) -> list[ClaimedJob]:
    """Mark up to ``limit`` queued jobs running for this runner (docs/ARCHITECTURE.md, rule 9): high priority
    before normal before low, then oldest first. Only collectors this runner knows are
    claimed, so runners with different collector files can share one queue. A job that runs
    after others in its batch is taken only once they have all ended, one waiting for its next
    attempt only once its wait is over (``CLAIMABLE``); none in ``busy`` (this runner is still
    stopping their previous attempt), none whose collector requires a label not in ``labels``.

    ``SKIP LOCKED`` on both the job and its batch: two runners never claim the same job, and
    a claim never waits for (or deadlocks with) a cancel holding the batch."""
    if limit <= 0:
        return []

    async def attempt() -> list[ClaimedJob]:
        async with database.transaction(pool) as cur:
            await cur.execute(
                f"""
                WITH next AS (
                    SELECT j.job_id FROM job_runs j JOIN job_batches b USING (batch_id)
                     WHERE j.status = 'queued' AND j.collector = ANY(%(collectors)s)
                       AND NOT (j.job_id = ANY(%(busy)s)) AND j.runner_labels <@ %(labels)s::text[]
                       AND {CLAIMABLE}
                     ORDER BY {PRIORITY_ORDER}, j.started_at, j.job_id
                     LIMIT %(limit)s
                       FOR UPDATE OF b, j SKIP LOCKED
                )
                UPDATE job_runs j
                   SET status = 'running', runner_id = %(runner_id)s, host = %(host)s, pid = NULL,
                       run_started_at = clock_timestamp(), last_progress_at = NULL, exit_code = NULL,
                       error = NULL, message = 'Starting collector'
                  FROM next WHERE j.job_id = next.job_id
                RETURNING j.job_id, j.batch_id, j.collector, j.attempt, j.max_attempts,
                          {PRIORITY_ORDER} AS rank, j.started_at
                """,
                {
                    "collectors": list(collectors),
                    "limit": limit,
                    "runner_id": runner_id,
                    "host": host,
                    "busy": list(busy),
                    "labels": list(labels),
                },
            )
            rows = await cur.fetchall()
        rows.sort(key=lambda r: (r["rank"], r["started_at"], r["job_id"]))
        return [ClaimedJob(r["job_id"], r["batch_id"], r["collector"], r["attempt"], r["max_attempts"]) for r in rows]

    return await _retrying(attempt)


async def _update_one_job(
    pool: aiopg.Pool, job_id: str, assignments: str, guard: str, params: dict[str, Any], *, ends_attempt: bool = False
) -> bool:
    """``UPDATE job_runs SET <assignments>`` for one job that is not terminal (and matches
    ``guard``), batch locked first. True if the row changed. ``ends_attempt``: this records
    how an attempt ended (a failure with attempts left is retried)."""
    params = {**params, "job_id": job_id}

    async def attempt() -> bool:
        async with database.transaction(pool) as cur:
            await cur.execute(
                "SELECT 1 FROM job_batches b JOIN job_runs j USING (batch_id)"
                " WHERE j.job_id = %(job_id)s FOR UPDATE OF b",
                params,
            )
            if await cur.fetchone() is None:
                return False
            if ends_attempt:
                await cur.execute(ENDING_ATTEMPT)
            try:
                await cur.execute(
                    f"UPDATE job_runs SET {assignments}"
                    f" WHERE job_id = %(job_id)s AND NOT collector_hub_is_terminal(status) AND {guard}"
                    " RETURNING job_id",
                    params,
                )
            except psycopg2.Error as exc:
                if exc.pgcode in RULE_VIOLATIONS:
                    return False
                raise
            return await cur.fetchone() is not None

    return await _retrying(attempt)


async def record_pid(pool: aiopg.Pool, job_id: str, runner_id: str, pid: int) -> bool:
    """The collector process started: remember its pid (its process group too)."""
    return await _update_one_job(
        pool,
        job_id,
        "pid = %(pid)s",
        "status = 'running' AND runner_id = %(runner_id)s",
        {"pid": pid, "runner_id": runner_id},
    )


async def report_running_progress(
    pool: aiopg.Pool, job_id: str, runner_id: str, percent: int | None, message: str | None
) -> bool:
    """A progress report read from the collector's stdout. False if the job has ended."""
    return await _update_one_job(
        pool,
        job_id,
        "progress_percent = coalesce(%(percent)s, progress_percent), message = coalesce(%(message)s, message),"
        " last_progress_at = clock_timestamp()",
        "status = 'running' AND runner_id = %(runner_id)s",
        {"percent": percent, "message": message, "runner_id": runner_id},
    )


async def finish_job(
    pool: aiopg.Pool,
    job_id: str,
    runner_id: str,
    status: str,
    message: str,
    error: str | None,
    exit_code: int | None,
    attempt: int | None = None,
) -> bool:
    """Record how this runner's process (of ``attempt``, when given) ended, unless the job
    already ended or moved on (False then). A failure with attempts left is retried."""
    return await _update_one_job(
        pool,
        job_id,
        "status = %(status)s, message = %(message)s, error = %(error)s, exit_code = %(exit_code)s",
        "status = 'running' AND runner_id = %(runner_id)s AND (%(attempt)s::int IS NULL OR attempt = %(attempt)s)",
        {
            "status": status,
            "message": message,
            "error": error,
            "exit_code": exit_code,
            "runner_id": runner_id,
            "attempt": attempt,
        },
        ends_attempt=True,
    )


async def requeue_job(pool: aiopg.Pool, job_id: str, runner_id: str, message: str) -> bool:
    """Hand a job this runner was running back to the queue, as if never started."""
    return await _update_one_job(
        pool,
        job_id,
        "status = 'queued', runner_id = NULL, host = NULL, pid = NULL, run_started_at = NULL,"
        " last_progress_at = NULL, progress_percent = NULL, exit_code = NULL, message = %(message)s",
        "status = 'running' AND runner_id = %(runner_id)s",
        {"runner_id": runner_id, "message": message},
    )


async def fail_abandoned_job(pool: aiopg.Pool, job_id: str, runner_id: str | None, error: str) -> bool:
    """Fail a job a dead runner left running (only if that runner still owns it)."""
    return await _update_one_job(
        pool,
        job_id,
        "status = 'failed', message = 'Runner stopped unexpectedly', error = %(error)s",
        "status = 'running' AND runner_id IS NOT DISTINCT FROM %(runner_id)s",
        {"runner_id": runner_id, "error": error},
        ends_attempt=True,
    )


async def job_states(pool: aiopg.Pool, job_ids: Sequence[str]) -> dict[str, JobState]:
    """Current status, runner and attempt of each job (missing ones were deleted): one cheap query."""
    if not job_ids:
        return {}
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT job_id, status, runner_id, attempt FROM job_runs WHERE job_id = ANY(%s)", (list(job_ids),)
        )
        rows = await cur.fetchall()
    return {row["job_id"]: JobState(row["status"], row["runner_id"], row["attempt"]) for row in rows}


async def fail_silent_jobs(pool: aiopg.Pool, silence_seconds: float) -> list[str]:
    """The watchdog: fail every running job (of any runner) that has reported nothing for
    ``silence_seconds`` (since its last progress, else since it started). The owning runner
    sees the failure and stops the process. Returns the failed job ids."""
    error = (
        f"No progress reported for {silence_seconds:g} seconds; the watchdog failed the job "
        "and its process is being stopped (COLLECTOR_HUB_WATCHDOG_TIMEOUT)"
    )

    async def attempt() -> list[str]:
        async with database.transaction(pool) as cur:
            await cur.execute(ENDING_ATTEMPT)  # the watchdog's failure ends the attempt
            await cur.execute(
                """
                WITH stale AS (
                    SELECT j.job_id FROM job_runs j JOIN job_batches b USING (batch_id)
                     WHERE j.status = 'running'
                       AND coalesce(j.last_progress_at, j.run_started_at, j.updated_at)
                           < clock_timestamp() - make_interval(secs => %(silence)s)
                       FOR UPDATE OF b, j SKIP LOCKED
                )
                UPDATE job_runs j SET status = 'failed', message = 'Stopped by the watchdog', error = %(error)s
                  FROM stale WHERE j.job_id = stale.job_id
                RETURNING j.job_id
                """,
                {"silence": silence_seconds, "error": error},
            )
            return [r["job_id"] for r in await cur.fetchall()]

    return await _retrying(attempt)


async def running_jobs_on(pool: aiopg.Pool, host: str, runner_id: str) -> list[RunningJob]:
    """Running jobs started on ``host`` or owned by ``runner_id``: the candidates for
    settling when a runner starts."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT job_id, runner_id, host, pid FROM job_runs"
            " WHERE status = 'running' AND (host = %s OR runner_id = %s)",
            (host, runner_id),
        )
        rows = await cur.fetchall()
    return [RunningJob(**row) for row in rows]
