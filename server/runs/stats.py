"""Per-collector statistics over a time window (``GET /api/collectors/stats``).

Jobs count in the window by when they were requested (``started_at``), like history. A job's
duration runs from its process start to its end, over jobs that started and ended completed or
failed; its queue wait runs from the request to the process start, over jobs that started.
Percentiles are those of sql/014's mergeable buckets (within 2 %), whether read from the jobs
or from summaries; the settled hours of a window come from summaries
(server/runs/stats_summaries.py: one period for the totals, one per bucket of the series), its
edges from the jobs, all in one snapshot: four statements when every summary is there.
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
ATTEMPTS = 3  # a request that made summaries another had made since its snapshot starts again
# One request makes summaries at a time: another that finds some missing meanwhile waits for it
# to end and starts again, in a snapshot that has them (its own would not: repeatable read).
BUILD_LOCK = 0x73746174  # "stat"
WAITS = 20


class _Busy(Exception):
    """Another request is making summaries."""


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
_WINDOW = "SELECT %(window_span)s::integer AS span_hours, %(window_start)s::timestamptz AS period_start"
_FULL = summaries.periods_param("full_spans", "full_starts")
_PART = summaries.periods_param("part_spans", "part_starts")
# The ``g`` of the window's totals, beside the series' buckets (all in the last 90 days).
WHOLE = summaries.EPOCH
_FULL_SERIES = f"""
    SELECT s.collector, array_agg(p.h ORDER BY p.h) AS buckets,
           array_agg(s.runs ORDER BY p.h) AS runs, array_agg(s.failed ORDER BY p.h) AS failed,
           array_agg(s.duration_p50_bucket ORDER BY p.h) AS medians
      FROM ({_FULL}) p JOIN job_stats_summaries s USING (span_hours, period_start)
     WHERE {{collector_filter}}
     GROUP BY s.collector
"""


class _Plan:
    """Which parts make up a window: raw ranges (its unsettled edges), the one period of its
    settled hours for the totals (``window``: aligned, or a composite of its hour), and for the
    series the periods of whole buckets (``full``: hours, or days) and of partial ones
    (``partial``: the settled hours of the first and last day, one period each)."""

    def __init__(self, since: dt.datetime, settled: dt.datetime, unit: str) -> None:
        lo = summaries.ceil_hour(since)
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        self.window: summaries.Period | None = None
        self.full: list[summaries.Period] = []
        self.partial: list[summaries.Period] = []
        if lo >= settled:
            self.raw = [(since, far)]
            return
        self.raw = [(since, lo), (settled, far)]
        self.window = (int((settled - lo) / summaries.HOUR), lo)
        if unit == "hour":
            self.full = [(1, lo + i * summaries.HOUR) for i in range(self.window[0])]
            return
        first = lo if lo.hour == 0 else lo.replace(hour=0) + DAY
        if first >= settled:
            self.partial = [self.window]
            return
        if first > lo:
            self.partial.append((int((first - lo) / summaries.HOUR), lo))
        while first + DAY <= settled:
            self.full.append((24, first))
            first += DAY
        if first < settled:
            self.partial.append((int((settled - first) / summaries.HOUR), first))

    def needed(self) -> list[summaries.Period]:
        return sorted({*self.full, *self.partial, *([self.window] if self.window else [])})


async def _read(cur: Any, plan: _Plan, unit: str, collector_filter: str, params: dict[str, Any]) -> tuple[Any, Any]:
    params = dict(params)
    params["los"], params["his"] = [r[0] for r in plan.raw], [r[1] for r in plan.raw]
    params["window_span"], params["window_start"] = plan.window or (0, WHOLE)
    params["full_spans"], params["full_starts"] = summaries.period_list(plan.full)
    params["part_spans"], params["part_starts"] = summaries.period_list(plan.partial)
    params["whole"] = WHOLE
    stored_filter = collector_filter.replace("j.collector", "s.collector")
    bucket = f"date_trunc('{unit}', {{}}, 'UTC')"
    # One statement for the totals and the partial buckets of the series: the raw edges by
    # bucket (counted in both), the window's period, the partial periods; merged here.
    parts = f"""
        SELECT *, true AS raw FROM ({summaries.raw_parts(_RANGES, bucket.format("j.started_at"), collector_filter)}) r
        UNION ALL SELECT *, false FROM ({summaries.stored(_WINDOW, "%(whole)s::timestamptz", stored_filter)}) w
        UNION ALL SELECT *, false FROM ({summaries.stored(_PART, bucket.format("s.period_start"), stored_filter)}) p
    """
    await cur.execute(parts, params)
    tallies: dict[tuple[str, dt.datetime], summaries.Tally] = {}
    for row in await cur.fetchall():
        keys = [(row["collector"], row["g"])] + ([(row["collector"], WHOLE)] if row["raw"] else [])
        for key in keys:
            if key not in tallies:
                tallies[key] = summaries.Tally()
            tallies[key].add(row)
    summary: dict[str, Row] = {}
    series: dict[str, list[Row]] = {}
    for (collector, g), tally in sorted(tallies.items()):
        figures = tally.figures()
        g = g.astimezone(dt.UTC)  # as the whole buckets' are: quick to hash
        if g == WHOLE:
            summary[collector] = figures
            continue
        point = {"bucket": g, "runs": figures["runs"], "failed": figures["failed"]}
        series.setdefault(collector, []).append({**point, "median_duration": figures["duration_p50"]})
    if plan.full:  # one row per collector: its whole buckets' points as arrays
        await cur.execute(_FULL_SERIES.format(collector_filter=stored_filter), params)
        for row in await cur.fetchall():
            points = series.setdefault(row["collector"], [])
            for bucket, runs, failed, median in zip(
                row["buckets"], row["runs"], row["failed"], row["medians"], strict=True
            ):
                points.append(
                    {
                        "bucket": summaries.hour_start(bucket),
                        "runs": runs,
                        "failed": failed,
                        "median_duration": summaries.bucket_value(median),
                    }
                )
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
        await cur.execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT collector_hub_stats_settled_before() AS settled"
        )
        settled = (await cur.fetchone())["settled"]
        plan = _Plan(since, settled, unit)
        missing = await summaries.stale(cur, plan.needed())
        if missing:
            await cur.execute("SELECT pg_try_advisory_xact_lock(%(key)s) AS mine", {"key": BUILD_LOCK})
            if not (await cur.fetchone())["mine"]:
                raise _Busy
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
    attempt = waits = 0
    while True:
        try:
            result, built = await _attempt(pool, since, unit, collectors)
        except _Busy:
            waits += 1
            if waits > WAITS:
                raise
            async with database.cursor(pool) as cur:  # until the other's transaction ends
                await cur.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": BUILD_LOCK})
            continue
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.UniqueViolation):
            attempt += 1
            if attempt == ATTEMPTS:
                raise
            continue
        if built:  # after changes: merge each hour's change rows into one (the sums stay)
            async with database.transaction(pool) as cur:
                await cur.execute(summaries.COMPACT, summaries.COMPACT_PARAMS)
        return result
