"""Runs' side of live push (the ``BatchSource`` of server/realtime/sources.py): push state
read from the tables, a whole batch in one statement, so one read serves the batch's event
and every one of its jobs' events (a job's GET body shows its batch's summary, so every batch
change is a new version of each of its jobs). The SQL is ``server.runs.store``'s (the GET's
statement, with only the columns the bodies show); this module shapes its rows into events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiopg

from server.realtime.events import BatchSnapshot, Event, batch_event, job_event
from server.realtime.sources import Reader
from server.runs import representation as rep
from server.runs import store as runs

# What live push reads of a batch and its jobs: what their GET bodies show, and the batch's seq
# (the version of every body of the batch). A row is the batch's columns, then one job's.
_BATCH_COLUMNS = (*rep.BATCH_COLUMNS, "seq")
_JOB_COLUMNS = rep.JOB_COLUMNS
_JOB_ID = len(_BATCH_COLUMNS) + _JOB_COLUMNS.index("job_id")
# The statement by batch id, built once (it is run on every change of a followed batch).
_BY_BATCH_ID = runs.batch_columns_statement(_BATCH_COLUMNS, _JOB_COLUMNS, batch_id="")[0]


def snapshot_from_rows(batch: dict[str, Any], jobs: Sequence[dict[str, Any]]) -> BatchSnapshot:
    seq = int(batch["seq"])
    body, job_bodies = rep.batch_and_job_json(batch, jobs)
    job_events = {job["job_id"]: job_event(job_body, seq) for job, job_body in zip(jobs, job_bodies, strict=True)}
    return BatchSnapshot(batch["batch_id"], seq, batch_event(body, seq), job_events)


class RunsSource:
    """Batches and jobs for live push, from the runs tables."""

    def snapshot_statement(self, batch_id: str) -> tuple[str, Sequence[Any]]:
        return _BY_BATCH_ID, (batch_id,)

    def snapshot_from(self, rows: Sequence[Sequence[Any]]) -> BatchSnapshot | None:
        if not rows:
            return None
        split = len(_BATCH_COLUMNS)
        batch = dict(zip(_BATCH_COLUMNS, rows[0][:split], strict=True))
        jobs = [dict(zip(_JOB_COLUMNS, row[split:], strict=True)) for row in rows if row[_JOB_ID] is not None]
        return snapshot_from_rows(batch, jobs)

    async def batch_snapshot(
        self,
        pool: aiopg.Pool,
        *,
        batch_id: str | None = None,
        job_id: str | None = None,
        reader: Reader | None = None,
    ) -> BatchSnapshot | None:
        """The batch ``batch_id`` (or the batch of ``job_id``) with its jobs, or None: the
        GET's statement with only the columns the bodies show, on ``reader`` (the LISTEN
        connection) when it can run it, no pool checkout (about half of the CPU of a pool
        read, docs/LIVE_PUSH.md), else from the pool."""
        result = None
        if reader is not None:
            statement = runs.batch_columns_statement(_BATCH_COLUMNS, _JOB_COLUMNS, batch_id=batch_id, job_id=job_id)
            result = await reader.read(*statement)
        if result is not None:
            rows = result[1]
        else:
            rows = await runs.batch_columns(pool, _BATCH_COLUMNS, _JOB_COLUMNS, batch_id=batch_id, job_id=job_id)
        return self.snapshot_from(rows)

    async def latest_run_events(self, pool: aiopg.Pool, collectors: Sequence[str]) -> list[Event]:
        """Per collector, its active run else its most recent one (what ``/runs/latest`` shows),
        as job events in seq order."""
        rows = await runs.latest_job_rows(pool, collectors)
        events = [job_event(rep.job_json(row), int(row["batch_seq"])) for row in rows]
        events.sort(key=lambda e: e.seq)
        return events

    async def batch_seqs(self, pool: aiopg.Pool, batch_ids: Sequence[str]) -> dict[str, int]:
        return await runs.batch_seqs(pool, batch_ids)

    async def batches_changed_since(self, pool: aiopg.Pool, seq: int, since: dt.datetime | None) -> dict[str, int]:
        return await runs.batches_changed_since(pool, seq, since)


BATCHES = RunsSource()
