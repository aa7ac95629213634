"""Runs' side of live push (the ``BatchSource`` of server/realtime/sources.py): push state
read from the tables, a whole batch in one statement, so one read serves the batch's event
and every one of its jobs' events (a job's GET body shows its batch's summary, so every batch
change is a new version of each of its jobs). The statement is ``body_sql.py``'s, which has
PostgreSQL build every body's JSON as it reads the rows; this module wraps its text in events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiopg

from server.realtime.events import BatchSnapshot, Event
from server.realtime.sources import Reader
from server.runs import body_sql
from server.runs import store as runs


def snapshot_from(rows: Sequence[Sequence[Any]]) -> BatchSnapshot | None:
    """The snapshot in the rows of ``body_sql.bodies_statement``: its bodies as PostgreSQL
    built them, each encoded to bytes and nothing else; None when there is no such batch."""
    if not rows:
        return None
    (seq_text, batch_id, status, body), *fields = rows[0][0]
    seq = int(seq_text)
    jobs = {}
    for job_id, job_status, collector, job_body in fields:
        jobs[job_id] = Event("job", job_id, seq, job_body.encode(), job_status, collector)
    return BatchSnapshot(batch_id, seq, Event("batch", batch_id, seq, body.encode(), status), jobs)


class RunsSource:
    """Batches and jobs for live push, from the runs tables."""

    def snapshot_statement(self, batch_id: str) -> tuple[str, Sequence[Any]]:
        return body_sql.BY_BATCH_ID, (batch_id,)  # bodies_statement(batch_id=...), one call less a state

    def snapshot_from(self, rows: Sequence[Sequence[Any]]) -> BatchSnapshot | None:
        return snapshot_from(rows)

    async def batch_snapshot(
        self,
        pool: aiopg.Pool,
        *,
        batch_id: str | None = None,
        job_id: str | None = None,
        reader: Reader | None = None,
    ) -> BatchSnapshot | None:
        """The batch ``batch_id`` (or the batch of ``job_id``) with its jobs, or None: the
        statement that builds their bodies, on ``reader`` (the LISTEN connection) when it can
        run it, no pool checkout (about half of the CPU of a pool read, docs/LIVE_PUSH.md),
        else from the pool."""
        result = None
        if reader is not None:
            result = await reader.read(*body_sql.bodies_statement(batch_id=batch_id, job_id=job_id))
        if result is not None:
            rows = result[1]
        else:
            rows = await body_sql.read_bodies(pool, batch_id=batch_id, job_id=job_id)
        return snapshot_from(rows)

    async def latest_run_events(
        self, pool: aiopg.Pool, collectors: Sequence[str], since: int | None = None, limit: int = 0
    ) -> list[Event]:
        """Per collector, its active run else its most recent one (what ``/runs/latest`` shows),
        and with ``since`` the runs whose batch changed after that seq, the newest ``limit`` (what
        a follower of the collectors missed), as job events in seq order, one per run."""
        _, runs = await body_sql.latest_runs(pool, collectors)
        if since is not None:
            runs += await body_sql.runs_changed_since(pool, collectors, since, limit)  # read after: newer
        newest = {run.job_id: run for run in runs}
        events = [Event("job", r.job_id, r.batch_seq, r.body, r.status, r.collector) for r in newest.values()]
        events.sort(key=lambda e: e.seq)
        return events

    async def batch_seqs(self, pool: aiopg.Pool, batch_ids: Sequence[str]) -> dict[str, int]:
        return await runs.batch_seqs(pool, batch_ids)

    async def batches_changed_since(self, pool: aiopg.Pool, seq: int, since: dt.datetime | None) -> dict[str, int]:
        return await runs.batches_changed_since(pool, seq, since)


BATCHES = RunsSource()
