"""Runner heartbeats, and failing queued jobs that no live runner can take."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiopg

from collectors.contract import RUNNER_LIVE_SECONDS
from server.db import database

Row = dict[str, Any]

# A runner is live until RUNNER_LIVE_SECONDS (the "live") after its last heartbeat, or until it
# stops: this is true of a runner that was live at some moment of the last "within" seconds
# (0: live now, as GET /api/runners shows it).
LIVE_WITHIN = (
    "least(heartbeat_at + make_interval(secs => %(live)s), stopped_at)"
    " > clock_timestamp() - make_interval(secs => %(within)s)"
)


async def record_heartbeat(
    pool: aiopg.Pool,
    runner_id: str,
    host: str,
    collectors: Sequence[str],
    capacity: int,
    running: Sequence[str],
    labels: Sequence[str] = (),
    without_credentials: Sequence[str] = (),
) -> None:
    """This runner is alive, offers ``collectors`` (those it knows and can run), carries
    ``labels``, knows ``without_credentials`` but lacks their credentials, and runs ``running``."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            """
            INSERT INTO runners (runner_id, host, collectors, capacity, running_jobs, labels, without_credentials)
            VALUES (%(id)s, %(host)s, %(collectors)s, %(capacity)s, %(running)s, %(labels)s, %(without)s)
            ON CONFLICT (runner_id) DO UPDATE
               SET host = excluded.host, collectors = excluded.collectors, capacity = excluded.capacity,
                   labels = excluded.labels, without_credentials = excluded.without_credentials,
                   running_jobs = excluded.running_jobs, heartbeat_at = clock_timestamp(), stopped_at = NULL,
                   started_at = CASE WHEN runners.stopped_at IS NULL THEN runners.started_at
                                     ELSE clock_timestamp() END
            """,
            {
                "id": runner_id,
                "host": host,
                "collectors": sorted(collectors),
                "capacity": capacity,
                "running": list(running),
                "labels": sorted(labels),
                "without": sorted(without_credentials),
            },
        )


async def record_stop(pool: aiopg.Pool, runner_id: str) -> None:
    async with database.cursor(pool) as cur:
        await cur.execute(
            "UPDATE runners SET stopped_at = clock_timestamp(), running_jobs = '{}' WHERE runner_id = %s", (runner_id,)
        )


@database.read_only
async def list_runners(pool: aiopg.Pool) -> list[Row]:
    """Every runner seen, live ones first, each with ``live`` (a heartbeat within
    RUNNER_LIVE_SECONDS and not stopped)."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"SELECT *, ({LIVE_WITHIN}) AS live FROM runners ORDER BY live DESC, heartbeat_at DESC, runner_id",
            {"live": RUNNER_LIVE_SECONDS, "within": 0},
        )
        return list(await cur.fetchall())


async def fail_unclaimable_jobs(pool: aiopg.Pool, timeout_seconds: float) -> list[str]:
    """Fail queued jobs that have waited ``timeout_seconds`` (since they were queued, or since
    their retry was due) while no live runner could take them for all that time: none of the
    runners live at any moment of those seconds offered their collector with the labels it
    requires. The message says why, from those same runners: none has the collector's
    credentials, none has its labels, or none knows it. Batch first, SKIP LOCKED, like every
    queue writer (server/runs/queue.py). Returns the failed job ids.

    Live is what GET /api/runners says: a heartbeat within RUNNER_LIVE_SECONDS, not stopped. So
    a heartbeat that comes late on a loaded machine, which a timeout as short as a heartbeat
    (10 s) would otherwise see as the runner gone, changes neither which jobs fail nor why."""
    error = (
        f"for {timeout_seconds:g} seconds, so nothing could run the job (COLLECTOR_HUB_UNCLAIMABLE_TIMEOUT)."
        " Check GET /api/runners (each runner's collectors, labels and collectors without credentials)."
    )
    # One autocommit statement (not a transaction around it): its locks end with it, so it
    # never holds them across an await (server/db/database.py).
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"""
            WITH live AS (
                SELECT collectors, labels, without_credentials FROM runners WHERE {LIVE_WITHIN}
            ), stuck AS (
                SELECT j.job_id FROM job_runs j JOIN job_batches b USING (batch_id)
                 WHERE j.status = 'queued'
                   AND coalesce(j.not_before, j.started_at) < clock_timestamp() - make_interval(secs => %(timeout)s)
                   AND NOT EXISTS (SELECT 1 FROM live
                                    WHERE live.collectors @> ARRAY[j.collector] AND j.runner_labels <@ live.labels)
                   FOR UPDATE OF b, j SKIP LOCKED
            ), why AS (
                SELECT stuck.job_id, CASE
                    WHEN EXISTS (SELECT 1 FROM live WHERE live.collectors @> ARRAY[j.collector])
                        THEN format('No live runner has the labels %%s', array_to_string(j.runner_labels, ', '))
                    WHEN EXISTS (SELECT 1 FROM live WHERE live.without_credentials @> ARRAY[j.collector])
                        THEN format('No live runner has %%s credentials', j.collector)
                    ELSE 'No live runner offered this collector' END AS reason
                  FROM stuck JOIN job_runs j USING (job_id)
            )
            UPDATE job_runs j SET status = 'failed', message = why.reason, error = why.reason || ' ' || %(error)s
              FROM why WHERE j.job_id = why.job_id AND j.status = 'queued'
            RETURNING j.job_id
            """,
            {"timeout": timeout_seconds, "within": timeout_seconds, "live": RUNNER_LIVE_SECONDS, "error": error},
        )
        return [row["job_id"] for row in await cur.fetchall()]


async def forget_old_runners(pool: aiopg.Pool, older_than_seconds: float) -> int:
    """Remove runners not heard from for ``older_than_seconds``."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "DELETE FROM runners WHERE heartbeat_at < clock_timestamp() - make_interval(secs => %s)",
            (older_than_seconds,),
        )
        return int(cur.rowcount)
