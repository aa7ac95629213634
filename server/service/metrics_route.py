"""``GET /metrics``: the Prometheus text format (see ``server/observability/metrics.py`` for the metrics).

It needs the ``read`` role like every other reading route, unless
``COLLECTOR_HUB_METRICS_PUBLIC`` makes it public (for a scraper on a private network that
cannot send credentials).
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from collectors.contract import JOB_STATUSES
from server.api.roles import requires
from server.db import database
from server.health.current import current_states
from server.health.rules import HEALTH_STATES
from server.keys import POOL, REGISTRY, SETTINGS
from server.observability.metrics import (
    COLLECTOR_CONSECUTIVE_FAILURES,
    COLLECTOR_HEALTH,
    COLLECTOR_LAST_SUCCESS,
    CONTENT_TYPE,
    EVENT_LOOP_TASKS,
    JOB_METRICS,
    JOBS,
    OPEN_CONNECTIONS,
    OPEN_FDS,
    JobFigures,
    render,
)
from server.realtime.keys import HUB

log = logging.getLogger(__name__)


async def refresh_job_counts(app: web.Application) -> None:
    """Jobs by status, read at scrape time: the database is the truth, and every node reports
    the same figure (sum over nodes would double count; use ``max`` in queries)."""
    try:
        async with database.cursor(app[POOL]) as cur:
            await cur.execute("SELECT status, count(*) AS jobs FROM job_runs GROUP BY status")
            counts = {row["status"]: row["jobs"] for row in await cur.fetchall()}
    except Exception as exc:  # a scrape must still answer while the database is away
        log.warning("metrics: cannot count jobs: %s", exc)
        return
    for status in JOB_STATUSES:
        JOBS.labels(status).set(counts.get(status, 0))
    try:
        JOB_METRICS.figures = await read_job_figures(app)
    except Exception as exc:
        log.warning("metrics: cannot read job figures: %s", exc)


async def read_job_figures(app: web.Application) -> JobFigures:
    """The job histograms and counters (kept by sql/006_run_operations.sql) and the queue."""
    async with database.cursor(app[POOL]) as cur:
        await cur.execute("SELECT collector_hub_metric_buckets() AS bounds")
        bounds = (await cur.fetchone())["bounds"]
        await cur.execute("SELECT * FROM job_finish_metrics ORDER BY collector, status")
        finished = [
            (
                row["collector"],
                row["status"],
                int(row["finished"]),
                [int(n) for n in row["duration_buckets"]],
                float(row["duration_sum"]),
                [int(n) for n in row["wait_buckets"]],
                float(row["wait_sum"]),
                int(row["wait_count"]),
            )
            for row in await cur.fetchall()
        ]
        await cur.execute(
            "SELECT collector, count(*) AS queued, extract(epoch FROM clock_timestamp() - min(started_at)) AS oldest"
            " FROM job_runs WHERE status = 'queued' GROUP BY collector"
        )
        queued = await cur.fetchall()
    return JobFigures(
        bounds=[float(b) for b in bounds],
        finished=finished,
        queue_depth={row["collector"]: int(row["queued"]) for row in queued},
        oldest_queued_seconds=max((float(row["oldest"]) for row in queued), default=0.0),
    )


async def refresh_collector_health(app: web.Application) -> None:
    """Each collector's state and last success, as GET /api/collectors/health computes them."""
    try:
        registry = app[REGISTRY]
        states = await current_states(app[POOL], registry)
    except Exception as exc:  # a scrape must still answer while the database is away
        log.warning("metrics: cannot read collector health: %s", exc)
        return
    for current in states:
        name = current.collector
        for state in HEALTH_STATES:
            COLLECTOR_HEALTH.labels(name, state).set(1 if current.state == state else 0)
        COLLECTOR_CONSECUTIVE_FAILURES.labels(name).set(current.facts.get("consecutive_failures", 0))
        last_success = current.facts.get("last_success_at")
        if last_success is not None:
            COLLECTOR_LAST_SUCCESS.labels(name).set(last_success.timestamp())


def refresh_open_connections(app: web.Application) -> None:
    hub = app.get(HUB)
    if hub is not None:
        for transport, count in hub.open_connections().items():
            OPEN_CONNECTIONS.labels(transport).set(count)


def refresh_process_counts() -> None:
    """Tasks and file descriptors of this process: a leak shows as a count that grows while
    the traffic does not (bench/soak.py reads them)."""
    EVENT_LOOP_TASKS.set(len(asyncio.all_tasks()))
    try:
        OPEN_FDS.set(len(os.listdir("/proc/self/fd")))
    except OSError:
        OPEN_FDS.set(0)


async def _metrics(request: web.Request) -> web.Response:
    await refresh_job_counts(request.app)
    await refresh_collector_health(request.app)
    refresh_open_connections(request.app)
    refresh_process_counts()
    return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE})


@requires("read")
async def metrics(request: web.Request) -> web.Response:
    return await _metrics(request)


@requires("public")
async def public_metrics(request: web.Request) -> web.Response:
    return await _metrics(request)


def setup_metrics_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", public_metrics if app[SETTINGS].metrics_public else metrics)
