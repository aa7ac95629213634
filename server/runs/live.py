"""Runs' side of live push (the ``BatchSource`` of server/realtime/sources.py): push state
read from the tables, a whole batch in one transaction, so one read serves the batch's event
and every one of its jobs' events (a job's GET body shows its batch's summary, so every batch
change is a new version of each of its jobs). The SQL is ``server.runs.store``'s; this module
shapes its rows into events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiopg

from server.realtime.events import BatchSnapshot, Event, batch_event, job_event
from server.realtime.sources import Reader
from server.runs import representation as rep
from server.runs import store as runs


def _job_row_with_batch(job: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """The row ``runs.fetch_job`` gets from its join, built from rows already read."""
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


class RunsSource:
    """Batches and jobs for live push, from the runs tables."""

    async def batch_snapshot(
        self,
        pool: aiopg.Pool,
        *,
        batch_id: str | None = None,
        job_id: str | None = None,
        reader: Reader | None = None,
    ) -> BatchSnapshot | None:
        """The batch ``batch_id`` (or the batch of ``job_id``) with its jobs, or None: the same
        statement as the GET's, on ``reader`` (the LISTEN connection) when it can run it, no
        pool checkout (about half of the CPU of a pool read, docs/LIVE_PUSH.md), else from
        the pool."""
        result = None
        if reader is not None:
            result = await reader.read(*runs.batch_rows_statement(batch_id=batch_id, job_id=job_id))
        if result is not None:
            rows = runs.split_batch_rows(*result)
        else:
            rows = await runs.batch_rows(pool, batch_id=batch_id, job_id=job_id)
        return None if rows is None else snapshot_from_rows(*rows)

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
