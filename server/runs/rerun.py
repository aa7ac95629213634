"""Re-running a batch or a job: always a new batch that names what it re-runs, never a change
to a terminal job (ARCHITECTURE rule 12)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiopg

from collectors.contract import RERUN_STATUSES, TERMINAL_STATUSES
from collectors.registry import CollectorSpec
from server.audit.entry import AuditEntry
from server.db import database
from server.errors import ConflictError, NotFoundError
from server.runs import store as runs


def _specs_for(jobs: list[dict[str, Any]], registry: Mapping[str, CollectorSpec]) -> list[CollectorSpec]:
    gone = sorted({job["collector"] for job in jobs if job["collector"] not in registry})
    if gone:
        raise ConflictError(
            f"Collector(s) no longer configured on this server, so they cannot re-run: {', '.join(gone)}"
        )
    return [registry[job["collector"]] for job in jobs]


async def rerun_batch(
    pool: aiopg.Pool, batch_id: str, only: str, registry: Mapping[str, CollectorSpec], audit: AuditEntry | None = None
) -> runs.BatchRows:
    """A new batch with the jobs of terminal batch ``batch_id``: its failed and cancelled ones
    (``only="failed"``) or all of them (``"all"``), in their original order. Returns its rows."""
    rows = await runs.batch_rows(pool, batch_id=batch_id)
    if rows is None:
        raise NotFoundError("Batch not found")
    batch, jobs = rows
    if batch["status"] not in TERMINAL_STATUSES:
        raise ConflictError(f"Batch is still {batch['status']}; only a batch that has ended can be re-run")
    if only == "failed":
        jobs = [job for job in jobs if job["status"] in RERUN_STATUSES]
        if not jobs:
            raise ConflictError(
                f"Batch {batch_id} has no failed or cancelled jobs to re-run (it {batch['status']});"
                ' send {"only": "all"} to run every job again'
            )
    return await runs.create_batch(
        pool,
        _specs_for(jobs, registry),
        batch["priority"],
        rerun_of=batch_id,
        rerun_jobs=[job["job_id"] for job in jobs],
        audit=audit,
    )


async def rerun_job(
    pool: aiopg.Pool, job_id: str, registry: Mapping[str, CollectorSpec], audit: AuditEntry | None = None
) -> runs.BatchRows:
    """A new batch with one job that re-runs terminal job ``job_id``. Returns its rows."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT j.job_id, j.batch_id, j.collector, j.status, b.priority"
            " FROM job_runs j JOIN job_batches b USING (batch_id) WHERE j.job_id = %s",
            (job_id,),
        )
        job = await cur.fetchone()
    if job is None:
        raise NotFoundError("Job not found")
    if job["status"] not in TERMINAL_STATUSES:
        raise ConflictError(f"Job is still {job['status']}; only a job that has ended can be re-run")
    return await runs.create_batch(
        pool, _specs_for([job], registry), job["priority"], rerun_of=job["batch_id"], rerun_jobs=[job_id], audit=audit
    )
