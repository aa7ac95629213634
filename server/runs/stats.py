"""Per-collector statistics over a time window (``GET /api/collectors/stats``).

Jobs count in the window by when they were requested (``started_at``), like history. A job's
duration runs from its process start to its end, over jobs that started and ended completed or
failed; its queue wait runs from the request to the process start, over jobs that started.
Percentiles are those of sql/014's mergeable buckets (within 2 %), whether read from the jobs
or from summaries; the settled hours of a window come from summaries
(server/runs/stats_summaries.py), its edges from the jobs, all in one snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiopg
import psycopg2.errors

from server.db import database
from server.runs import stats_summaries as summaries

Row = dict[str, Any]
DAY = dt.timedelta(days=1)
ATTEMPTS = 3  # concurrent requests making the same summary: the loser starts again

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
_RANGES = "SELECT * FROM unnest(%(los)s::timestamptz[], %(his)s::timestamptz[]) AS r(lo, hi)"
_FULL = "SELECT * FROM unnest(%(full_spans)s::integer[], %(full_starts)s::timestamptz[]) AS p(span_hours, period_start)"
_PART = "SELECT * FROM unnest(%(part_spans)s::integer[], %(part_starts)s::timestamptz[]) AS p(span_hours, period_start)"


class _Plan:
    """Which parts make up a window: raw ranges, summaries for the totals (``cover``), and for
    the series whole buckets (``full``) and hours of partial buckets (``partial``)."""

    def __init__(self, since: dt.datetime, settled: dt.datetime, unit: str) -> None:
        lo = summaries.ceil_hour(since)
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        if lo >= settled:
            self.raw = [(since, far)]
            self.cover: list[summaries.Period] = []
            self.full: list[summaries.Period] = []
            self.partial: list[summaries.Period] = []
            return
        self.raw = [(since, lo), (settled, far)]
        self.cover = summaries.cover(lo, settled)
        hours = [(1, lo + i * summaries.HOUR) for i in range(int((settled - lo) / summaries.HOUR))]
        if unit == "hour":
            self.full, self.partial = hours, []
            return
        first = lo.replace(hour=0) if lo.hour == 0 else lo.replace(hour=0) + DAY
        days = []
        while first + DAY <= settled:
            days.append((24, first))
            first += DAY
        in_days = {h for h in hours if days and days[0][1] <= h[1] < days[-1][1] + DAY}
        self.full, self.partial = days, [h for h in hours if h not in in_days]

    def needed(self) -> list[summaries.Period]:
        return sorted(set(self.cover) | set(self.full) | set(self.partial))


async def _read(cur: Any, plan: _Plan, unit: str, collector_filter: str, params: dict[str, Any]) -> tuple[Any, Any]:
    params = dict(params)
    params["los"], params["his"] = [r[0] for r in plan.raw], [r[1] for r in plan.raw]
    params["spans"], params["starts"] = summaries.period_list(plan.cover)
    params["full_spans"], params["full_starts"] = summaries.period_list(plan.full)
    params["part_spans"], params["part_starts"] = summaries.period_list(plan.partial)
    stored_filter = collector_filter.replace("j.collector", "s.collector")
    totals = (
        summaries.raw_parts(_RANGES, "0", collector_filter)
        + " UNION ALL "
        + summaries.stored(summaries.PERIODS_PARAM, "0", stored_filter)
    )
    await cur.execute(summaries.totals(totals), params)
    summary = {row["collector"]: summaries.figures_of(row) for row in await cur.fetchall()}

    series: dict[str, list[Row]] = {}
    await cur.execute(
        "SELECT collector, g AS bucket, runs, failed, duration_p50_bucket FROM ("
        + summaries.stored(_FULL, "s.period_start", stored_filter)
        + ") f",
        params,
    )
    for row in await cur.fetchall():
        point = {**row, "median_duration": summaries.bucket_value(row["duration_p50_bucket"])}
        series.setdefault(row["collector"], []).append(point)
    bucket = f"date_trunc('{unit}', {{}}, 'UTC')"
    partial = summaries.raw_parts(_RANGES, bucket.format("j.started_at"), collector_filter) + " UNION ALL "
    await cur.execute(
        summaries.totals(partial + summaries.stored(_PART, bucket.format("s.period_start"), stored_filter)), params
    )
    for row in await cur.fetchall():
        figures = summaries.figures_of(row)
        point = {"bucket": row["g"], "runs": figures["runs"], "failed": figures["failed"]}
        series.setdefault(row["collector"], []).append({**point, "median_duration": figures["duration_p50"]})
    return summary, series


Stats = tuple[dict[str, Row], dict[str, list[Row]], dict[str, Row]]


async def _attempt(
    pool: aiopg.Pool, since: dt.datetime, unit: str, collectors: Sequence[str] | None
) -> tuple[Stats, bool]:
    params: dict[str, Any] = {}
    collector_filter = "true"
    if collectors is not None:
        collector_filter = "j.collector = ANY(%(collectors)s)"
        params["collectors"] = list(collectors)
    async with database.transaction(pool) as cur:  # one snapshot: the parts agree
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        await cur.execute("SELECT collector_hub_stats_settled_before() AS settled")
        settled = (await cur.fetchone())["settled"]
        plan = _Plan(since, settled, unit)
        missing = await summaries.stale(cur, plan.needed())
        if missing:
            await summaries.build(cur, missing)
        summary, series = await _read(cur, plan, unit, collector_filter, params)
        names = sorted(set(collectors or ()) | set(summary))
        await cur.execute(_LAST, {"names": names})
        last = {row["collector"]: row for row in await cur.fetchall()}
    return (summary, series, last), bool(missing)


async def collector_stats(pool: aiopg.Pool, since: dt.datetime, unit: str, collectors: Sequence[str] | None) -> Stats:
    """(summary, series, last outcomes), each by collector, for jobs requested since ``since``;
    ``unit`` is ``hour`` or ``day``. Without ``collectors``, every collector with runs in the
    window."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result, built = await _attempt(pool, since, unit, collectors)
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.UniqueViolation):
            if attempt == ATTEMPTS:
                raise
            continue
        if built:  # after changes: merge each hour's change rows into one (the sums stay)
            async with database.transaction(pool) as cur:
                await cur.execute(summaries.COMPACT)
        return result
    raise AssertionError("unreachable")
