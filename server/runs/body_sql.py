"""The batch and job GET bodies (docs/COLLECTOR_RUN_TRACKING_API.md), built by PostgreSQL: the
one copy of those two shapes. Live push re-reads a batch with every job's body in one statement
on every committed change, and Python only frames the JSON text it returns (docs/LIVE_PUSH.md,
the fixed cost per state); the batch and job GETs answer from the same cache, and the answers of
cancel and of progress, the webhooks and ``/runs/latest`` read their bodies here too.

The job's own fields and ``started_by`` are also shown by history and the batch listing, which
representation.py shapes in Python; tests/test_live_bodies.py holds these bodies to a Python
copy built on those (tests/support/run_bodies.py), as JSON, on random rows. PostgreSQL's JSON
text differs from ``json.dumps``'s only in whitespace (``"key" : value``) and in leaving
non-ASCII characters unescaped, both the same JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import aiopg

from collectors.contract import TERMINAL_STATUSES
from server.db import database
from server.db.prepared import execute_prepared
from server.runs import store as runs

# format_timestamp (server/api/timestamps.py) in SQL: UTC, six digits of fraction, a Z.
_TIMESTAMP = '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\''
_TERMINAL = ", ".join(f"'{status}'" for status in TERMINAL_STATUSES)


def _timestamp(column: str) -> str:
    return f"to_char({column} AT TIME ZONE 'UTC', {_TIMESTAMP})"


def _duration_seconds(table: str) -> str:
    """representation.duration_seconds (history shows it too): ``round`` of a float8 rounds
    half to even, like Python's, and an interval's epoch is exact (numeric) before it becomes
    the same float."""
    return (
        f"CASE WHEN {table}.status IN ({_TERMINAL}) AND {table}.ended_at IS NOT NULL"
        f" THEN greatest(0, round(extract(epoch FROM {table}.ended_at - {table}.started_at)::float8))::bigint END"
    )


def _object(fields: Sequence[tuple[str, str]]) -> str:
    return "json_build_object(" + ", ".join(f"'{key}', {value}" for key, value in fields) + ")"


# a job's own fields (representation.job_state_json, which history shows)
_JOB_STATE = (
    ("job_id", "j.job_id"),
    ("job_name", "j.job_name"),
    ("collector", "j.collector"),
    ("status", "j.status"),
    ("started_at", _timestamp("j.started_at")),
    ("updated_at", _timestamp("j.updated_at")),
    ("ended_at", _timestamp("j.ended_at")),
    ("progress_percent", "j.progress_percent"),
    ("message", "j.message"),
    ("error", "j.error"),
    ("duration_seconds", _duration_seconds("j")),
    ("attempt", "j.attempt"),
    ("max_attempts", "j.max_attempts"),
)
# what a job's GET shows of its batch
_BATCH_SUMMARY = (
    ("batch_id", "b.batch_id"),
    ("batch_status", "b.status"),
    ("batch_progress_percent", "b.progress_percent"),
    ("estimated_completion", _timestamp("b.estimated_completion")),
    ("batch_message", "b.message"),
)
_STARTED_BY = (  # representation.started_by_json, which the batch listing shows
    "CASE WHEN b.rerun_of IS NOT NULL THEN json_build_object('kind', 'rerun', 'name', b.rerun_of)"
    " WHEN b.schedule_id IS NOT NULL THEN json_build_object('kind', 'schedule', 'name', b.schedule_name)"
    " ELSE json_build_object('kind', 'manual', 'name', b.requested_by) END"
)
_SCHEDULE = (  # the schedule that started a batch, and the due time it fired for
    "CASE WHEN b.schedule_id IS NOT NULL THEN json_build_object("
    f"'schedule_id', b.schedule_id, 'name', b.schedule_name, 'due_at', {_timestamp('b.scheduled_for')}) END"
)
# the batch's GET body, its jobs (each job's fields and its rerun_of) aggregated by the statement
# below as ``jobs.elements``
_BATCH = (
    ("batch_id", "b.batch_id"),
    ("status", "b.status"),
    ("priority", "b.priority"),
    ("progress_percent", "b.progress_percent"),
    ("estimated_completion", _timestamp("b.estimated_completion")),
    ("started_at", _timestamp("b.started_at")),
    ("updated_at", _timestamp("b.updated_at")),
    ("ended_at", _timestamp("b.ended_at")),
    ("message", "b.message"),
    ("error", "b.error"),
    ("collectors", "coalesce(jobs.elements, '[]'::json)"),
    ("duration_seconds", _duration_seconds("b")),
    ("schedule", _SCHEDULE),
    ("rerun_of", "b.rerun_of"),
    ("started_by", _STARTED_BY),
)

# the job's GET body, for a job ``j`` joined with its batch ``b``
JOB_BODY = f"{_object((*_JOB_STATE, *_BATCH_SUMMARY, ('rerun_of', 'j.rerun_of')))}::text"

# One row of one column, a two-dimensional text array: first the batch's seq, id, status and GET
# body, then each job's id, status, collector and GET body, in position order. One statement,
# hence one snapshot (store.py says why that matters); one column, because psycopg2 decodes
# each column's name with a Python call on every read (docs/LIVE_PUSH.md, the fixed cost per
# state).
_ORDER = "ORDER BY j.position, j.job_id"
_STATEMENT = f"""
    SELECT ARRAY[ARRAY[b.seq::text, b.batch_id, b.status, {_object(_BATCH)}::text]] || jobs.fields
      FROM job_batches b
     CROSS JOIN LATERAL (
           SELECT json_agg({_object((*_JOB_STATE, ("rerun_of", "j.rerun_of")))} {_ORDER}) AS elements,
                  array_agg(ARRAY[j.job_id, j.status, j.collector, {JOB_BODY}] {_ORDER}) AS fields
             FROM job_runs j
            WHERE j.batch_id = b.batch_id) jobs
     WHERE b.batch_id = {{target}}
"""
BY_BATCH_ID = _STATEMENT.format(target="%s")
BY_JOB_ID = _STATEMENT.format(target="(SELECT batch_id FROM job_runs WHERE job_id = %s)")


# The statements' names where they are prepared on pooled sessions (server/db/prepared.py).
_NAMES = {
    BY_BATCH_ID: "collector_hub_bodies_by_batch",
    BY_JOB_ID: "collector_hub_bodies_by_job",
}


def bodies_statement(*, batch_id: str | None = None, job_id: str | None = None) -> tuple[str, tuple[str]]:
    """The statement that reads batch ``batch_id`` (or the batch of ``job_id``) with its jobs'
    bodies, and its parameters: no row when there is no such batch."""
    if batch_id is not None:
        return BY_BATCH_ID, (batch_id,)
    assert job_id is not None, "a batch id or a job id"
    return BY_JOB_ID, (job_id,)


@database.read_only
async def read_bodies(
    pool: aiopg.Pool, *, batch_id: str | None = None, job_id: str | None = None
) -> list[tuple[Any, ...]]:
    """The rows of ``bodies_statement``, read from the pool (prepared once per pooled session:
    unprepared, PostgreSQL spends more CPU parsing and planning it than Python did shaping the
    rows, bench/bodies.py)."""
    sql, params = bodies_statement(batch_id=batch_id, job_id=job_id)
    async with database.cursor(pool, tuples=True) as cur:
        await execute_prepared(cur, _NAMES[sql], sql, params)
        return list(await cur.fetchall())


_JOB_BY_ID = f"SELECT {JOB_BODY} FROM job_runs j JOIN job_batches b USING (batch_id) WHERE j.job_id = %s"


@database.read_only
async def job_body(pool: aiopg.Pool, job_id: str) -> bytes | None:
    """The job's GET body (None: no such job), for answers that show one job."""
    async with database.cursor(pool, tuples=True) as cur:
        await execute_prepared(cur, "collector_hub_job_body", _JOB_BY_ID, (job_id,))
        row = await cur.fetchone()
    return None if row is None else str(row[0]).encode()


async def batch_body(pool: aiopg.Pool, batch_id: str) -> bytes | None:
    """The batch's GET body (None: no such batch), for answers that show one batch."""
    rows = await read_bodies(pool, batch_id=batch_id)
    return str(rows[0][0][0][3]).encode() if rows else None


_LATEST_COLUMNS = f"j.collector, j.job_id, j.status, j.seq, b.seq, {JOB_BODY}"
_LATEST = runs.latest_jobs_statement(_LATEST_COLUMNS)
# Runs in batches that changed after a seq, newest first: the batch's seq is the job events'
# seq, and a job's body shows its batch's summary, so a sibling's change is the job's too.
_CHANGED = (
    f"SELECT {_LATEST_COLUMNS} FROM job_batches b JOIN job_runs j USING (batch_id)"
    " WHERE b.seq > %s AND j.collector = ANY(%s) ORDER BY b.seq DESC, j.job_id DESC LIMIT %s"
)


@dataclasses.dataclass(frozen=True, slots=True)
class LatestRun:
    """A collector's latest run (store.latest_jobs_statement), with its job's GET body."""

    collector: str
    job_id: str
    status: str
    batch_seq: int
    body: bytes


@database.read_only
async def latest_runs(pool: aiopg.Pool, collectors: Sequence[str]) -> tuple[int, list[LatestRun]]:
    """Per collector, its active run (queued or running), else its most recent one, in the
    order of ``collectors``; and the newest seq among those jobs and their batches, the version
    of exactly this answer.

    Not the sequence's ``last_value``: a value handed to a transaction that has not committed
    yet would version an answer that does not include it, and after that commit the same
    version would wrongly answer 304."""
    async with database.cursor(pool, tuples=True) as cur:
        await execute_prepared(cur, "collector_hub_latest_bodies", _LATEST, (list(collectors),))
        rows = await cur.fetchall()
    order = {name: i for i, name in enumerate(collectors)}
    rows.sort(key=lambda row: order[row[0]])
    seq = max((max(row[3], row[4]) for row in rows), default=0)
    return int(seq), [_latest_run(row) for row in rows]


@database.read_only
async def runs_changed_since(pool: aiopg.Pool, collectors: Sequence[str], seq: int, limit: int) -> list[LatestRun]:
    """The runs of ``collectors`` whose batch changed after ``seq``, the newest ``limit`` of
    them, newest first: what a follower of those collectors missed since it saw ``seq``."""
    async with database.cursor(pool, tuples=True) as cur:
        await execute_prepared(cur, "collector_hub_changed_bodies", _CHANGED, (seq, list(collectors), limit))
        return [_latest_run(row) for row in await cur.fetchall()]


def _latest_run(row: Sequence[Any]) -> LatestRun:
    return LatestRun(row[0], row[1], row[2], int(row[4]), str(row[5]).encode())
