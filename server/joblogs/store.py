"""Job log lines in PostgreSQL: written by the runner in batches, read by the logs routes and
streams, trimmed by retention (sql/006_run_operations.sql has the table and its NOTIFY)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiopg

from server.db import database

Row = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class LogLine:
    line_no: int
    stream: str
    progress: bool
    logged_at: dt.datetime
    text: str


async def write_lines(pool: aiopg.Pool, job_id: str, lines: Sequence[LogLine], drop_through: int) -> None:
    """Store ``lines`` and delete the job's lines numbered ``drop_through`` or less (the cap
    moved past them): one statement, so one round trip and one NOTIFY however many lines."""
    if not lines and drop_through <= 0:
        return
    async with database.cursor(pool) as cur:
        await cur.execute(
            """
            WITH dropped AS (DELETE FROM job_logs WHERE job_id = %(job_id)s AND line_no <= %(drop_through)s)
            INSERT INTO job_logs (job_id, line_no, stream, progress, logged_at, text)
            SELECT %(job_id)s, * FROM unnest(%(numbers)s::bigint[], %(streams)s::text[], %(progress)s::boolean[],
                                             %(times)s::timestamptz[], %(texts)s::text[])
            ON CONFLICT (job_id, line_no) DO NOTHING
            """,
            {
                "job_id": job_id,
                "drop_through": drop_through,
                "numbers": [line.line_no for line in lines],
                "streams": [line.stream for line in lines],
                "progress": [line.progress for line in lines],
                "times": [line.logged_at for line in lines],
                "texts": [line.text for line in lines],
            },
        )


async def stored_line_sizes(pool: aiopg.Pool, job_id: str) -> list[tuple[int, int]]:
    """(line, bytes) of the job's stored lines, oldest first: a job run again after a requeue
    numbers on from the last and counts them against its caps."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT line_no, octet_length(text) AS size FROM job_logs WHERE job_id = %s ORDER BY line_no", (job_id,)
        )
        return [(int(row["line_no"]), int(row["size"])) for row in await cur.fetchall()]


@database.read_only
async def read_lines(pool: aiopg.Pool, job_id: str, after: int, limit: int) -> tuple[Row, list[Row], int] | None:
    """(job status row, up to ``limit`` lines numbered above ``after``, how many lines before
    the first stored one were dropped), read in one snapshot; None when there is no such job."""
    async with database.transaction(pool) as cur:
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        await cur.execute("SELECT job_id, status FROM job_runs WHERE job_id = %s", (job_id,))
        job = await cur.fetchone()
        if job is None:
            return None
        await cur.execute(
            "SELECT line_no, stream, progress, logged_at, text FROM job_logs"
            " WHERE job_id = %s AND line_no > %s ORDER BY line_no LIMIT %s",
            (job_id, after, limit),
        )
        lines = list(await cur.fetchall())
        await cur.execute("SELECT coalesce(min(line_no) - 1, 0) AS dropped FROM job_logs WHERE job_id = %s", (job_id,))
        dropped = int((await cur.fetchone())["dropped"])
    return job, lines, dropped


async def delete_old_lines(pool: aiopg.Pool, older_than: dt.datetime, batch_size: int) -> int:
    """Delete up to ``batch_size`` lines logged before ``older_than``; returns how many. Small
    batches in autocommit: each holds its row locks for one short statement."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "DELETE FROM job_logs WHERE ctid = ANY(ARRAY( SELECT ctid FROM job_logs WHERE logged_at < %s LIMIT %s))",
            (older_than, batch_size),
        )
        return int(cur.rowcount)
