"""Searching past runs: jobs (``GET /api/collectors/history``) and batches
(``GET /api/collectors/batches``), filtered and paged with a keyset cursor.

Both list newest first by (started_at, id), both descending. A cursor is the (started_at, id)
of the last row of a page, and the next page is the rows strictly after it in that order: a
row inserted meanwhile is either before the cursor (a newer run: it shows on a fresh first
page) or after it (shown once, in its place), so pages never repeat or skip a row. Each filter
combination reads one index range of sql/006_run_operations.sql.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiopg

from server.db import database

Row = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a page ends: the (started_at, id) of its last row."""

    started_at: dt.datetime
    row_id: str


@dataclasses.dataclass(frozen=True)
class Filters:
    collectors: Sequence[str] | None = None
    statuses: Sequence[str] | None = None
    batch_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def _conditions(filters: Filters, after: Position | None, id_column: str, alias: str) -> tuple[str, dict[str, Any]]:
    clauses = []
    params: dict[str, Any] = {}
    if filters.statuses:
        clauses.append(f"{alias}.status = ANY(%(statuses)s)")
        params["statuses"] = list(filters.statuses)
    if filters.batch_id is not None:
        clauses.append(f"{alias}.batch_id = %(batch_id)s")
        params["batch_id"] = filters.batch_id
    if filters.since is not None:
        clauses.append(f"{alias}.started_at >= %(since)s")
        params["since"] = filters.since
    if filters.until is not None:
        clauses.append(f"{alias}.started_at < %(until)s")
        params["until"] = filters.until
    if after is not None:
        clauses.append(f"({alias}.started_at, {alias}.{id_column}) < (%(after_at)s, %(after_id)s)")
        params["after_at"] = after.started_at
        params["after_id"] = after.row_id
    return " AND ".join(clauses) or "true", params


@database.read_only
async def job_page(pool: aiopg.Pool, filters: Filters, limit: int, after: Position | None) -> list[Row]:
    """Up to ``limit + 1`` job rows after ``after`` (the extra row says there is a next page).

    Several collectors are read as one ordered index range each, merged (``UNION ALL`` of
    per-collector ``LIMIT`` subqueries): ``collector = ANY(...)`` would read every matching
    row of the list and sort them, which is slow for the common collectors."""
    where, params = _conditions(filters, after, "job_id", "j")
    params["limit"] = limit + 1
    order = "ORDER BY started_at DESC, job_id DESC"
    async with database.cursor(pool) as cur:
        if not filters.collectors:
            await cur.execute(f"SELECT * FROM job_runs j WHERE {where} {order} LIMIT %(limit)s", params)
        else:
            parts = []
            for i, name in enumerate(filters.collectors):
                params[f"c{i}"] = name
                parts.append(
                    f"(SELECT * FROM job_runs j WHERE j.collector = %(c{i})s AND {where} {order} LIMIT %(limit)s)"
                )
            await cur.execute(f"SELECT * FROM ({' UNION ALL '.join(parts)}) j {order} LIMIT %(limit)s", params)
        return list(await cur.fetchall())


@database.read_only
async def batch_page(pool: aiopg.Pool, filters: Filters, limit: int, after: Position | None) -> list[Row]:
    """Up to ``limit + 1`` batch rows after ``after``, each with its jobs' ``job_statuses``
    ({status: count}) and ``job_collectors``. The collector filter keeps batches with a job of
    one of those collectors; the status filter is on the batch's status."""
    where, params = _conditions(filters, after, "batch_id", "b")
    params["limit"] = limit + 1
    if filters.collectors:
        where += (
            " AND EXISTS (SELECT 1 FROM job_runs j WHERE j.batch_id = b.batch_id AND j.collector = ANY(%(collectors)s))"
        )
        params["collectors"] = list(filters.collectors)
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"""
            SELECT b.*, s.job_statuses, s.job_collectors
              FROM (SELECT * FROM job_batches b WHERE {where}
                     ORDER BY started_at DESC, batch_id DESC LIMIT %(limit)s) b
              CROSS JOIN LATERAL (
                  SELECT (SELECT json_object_agg(status, n)::text
                            FROM (SELECT status, count(*) AS n FROM job_runs
                                   WHERE batch_id = b.batch_id GROUP BY status) c) AS job_statuses,
                         (SELECT array_agg(collector ORDER BY position, job_id)
                            FROM job_runs WHERE batch_id = b.batch_id) AS job_collectors
              ) s
             ORDER BY b.started_at DESC, b.batch_id DESC
            """,
            params,
        )
        return list(await cur.fetchall())


@database.read_only
async def collectors_with_runs(pool: aiopg.Pool, names: Sequence[str]) -> set[str]:
    """Which of ``names`` have at least one run (one index probe each)."""
    if not names:
        return set()
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT name FROM unnest(%s::text[]) AS name WHERE EXISTS (SELECT 1 FROM job_runs WHERE collector = name)",
            (list(names),),
        )
        return {row["name"] for row in await cur.fetchall()}
