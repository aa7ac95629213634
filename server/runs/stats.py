"""Per-collector statistics over a time window (``GET /api/collectors/stats``).

Jobs count in the window by when they were requested (``started_at``), like history. A job's
duration runs from its process start to its end, over jobs that started and ended completed or
failed; its queue wait runs from the request to the process start, over jobs that started.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiopg

from server.db import database

Row = dict[str, Any]

_SUMMARY = """
    SELECT collector,
           count(*) AS runs,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration) AS duration_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration) AS duration_p95,
           max(duration) AS duration_max,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY wait) AS wait_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY wait) AS wait_p95
      FROM (SELECT collector, status,
                   CASE WHEN status IN ('completed', 'failed') AND run_started_at IS NOT NULL
                        THEN extract(epoch FROM ended_at - run_started_at) END AS duration,
                   extract(epoch FROM run_started_at - started_at) AS wait
              FROM job_runs
             WHERE started_at >= %(since)s AND {collector_filter}) j
     GROUP BY collector
"""

_SERIES = """
    SELECT collector, date_trunc(%(unit)s, started_at, 'UTC') AS bucket,
           count(*) AS runs,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY
               CASE WHEN status IN ('completed', 'failed') AND run_started_at IS NOT NULL
                    THEN extract(epoch FROM ended_at - run_started_at) END) AS median_duration
      FROM job_runs
     WHERE started_at >= %(since)s AND {collector_filter}
     GROUP BY collector, bucket
     ORDER BY collector, bucket
"""

# The newest completed and failed job of each collector, whenever it ran (one index probe each).
_LAST = """
    SELECT c.name AS collector, s.job_id AS success_job_id, s.ended_at AS success_at,
           f.job_id AS failure_job_id, f.ended_at AS failure_at, f.error AS failure_error
      FROM unnest(%(names)s::text[]) AS c(name)
      LEFT JOIN LATERAL (SELECT job_id, ended_at FROM job_runs
                          WHERE collector = c.name AND status = 'completed'
                          ORDER BY started_at DESC, job_id DESC LIMIT 1) s ON true
      LEFT JOIN LATERAL (SELECT job_id, ended_at, error FROM job_runs
                          WHERE collector = c.name AND status = 'failed'
                          ORDER BY started_at DESC, job_id DESC LIMIT 1) f ON true
"""


@database.read_only
async def collector_stats(
    pool: aiopg.Pool, since: dt.datetime, unit: str, collectors: Sequence[str] | None
) -> tuple[dict[str, Row], dict[str, list[Row]], dict[str, Row]]:
    """(summary, series, last outcomes), each by collector, for jobs requested since ``since``;
    ``unit`` is ``hour`` or ``day``. Without ``collectors``, every collector with runs in the
    window."""
    params: dict[str, Any] = {"since": since, "unit": unit}
    collector_filter = "true"
    if collectors is not None:
        collector_filter = "collector = ANY(%(collectors)s)"
        params["collectors"] = list(collectors)
    async with database.transaction(pool) as cur:  # one snapshot: the parts agree
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        await cur.execute(_SUMMARY.format(collector_filter=collector_filter), params)
        summary = {row["collector"]: row for row in await cur.fetchall()}
        await cur.execute(_SERIES.format(collector_filter=collector_filter), params)
        series: dict[str, list[Row]] = {}
        for row in await cur.fetchall():
            series.setdefault(row["collector"], []).append(row)
        names = sorted(set(collectors or ()) | set(summary))
        await cur.execute(_LAST, {"names": names})
        last = {row["collector"]: row for row in await cur.fetchall()}
    return summary, series, last
