"""Summaries of closed hours, days and longer blocks of job history, for the statistics
(``GET /api/collectors/stats``, server/runs/stats.py), made on demand and kept.

- A period is ``SPANS`` hours long (an hour, a day, 8 days, 64 days) and starts at a multiple
  of its length since 1970-01-01 UTC. Only settled hours are summarised: those that ended five
  minutes or more before the request (``collector_hub_stats_settled_before()``, sql/014).
- A summary keeps, per collector, the counts by status, the longest duration and the duration
  and queue-wait buckets of sql/014 (which merge); an hour is summarised from the jobs, a longer
  period from its eight (or 24) shorter ones.
- A summary is used only while the changes recorded for its hours (``job_stats_changes``,
  written in the writer's transaction by triggers that fire whoever writes, sql/014) weigh what
  they weighed when it was made; otherwise it is made again, in the same snapshot that reads it.
- A window is its settled hours, covered by as few periods as fit (at most a few dozen per
  collector for 90 days), plus the raw jobs of its two unsettled edges (under an hour at the
  start, the last hour or so at the end).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

HOUR = dt.timedelta(hours=1)
BASE = 1.04  # the buckets' ratio, as in sql/014
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SPANS = (1, 24, 192, 1536)  # hours; each a multiple of the one before
Period = tuple[int, dt.datetime]  # (span in hours, start)

_DURATION = (
    "CASE WHEN status IN ('completed', 'failed') AND run_started_at IS NOT NULL"
    " THEN extract(epoch FROM ended_at - run_started_at)::float8 END"
)
_WAIT = "extract(epoch FROM run_started_at - started_at)::float8"
FIGURES = (
    "runs",
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
)


def raw_parts(ranges: str, period: str, collector_filter: str) -> str:
    """Jobs of the time ranges ``ranges`` (a relation of ``lo, hi``) as parts: one row per
    (``period`` expression, collector) with the columns a summary has."""
    return f"""
        SELECT g, collector, count(*) AS runs,
               count(*) FILTER (WHERE status = 'queued') AS queued,
               count(*) FILTER (WHERE status = 'running') AS running,
               count(*) FILTER (WHERE status = 'completed') AS completed,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
               max(duration) AS duration_max, NULL::integer AS duration_p50_bucket,
               coalesce(array_agg(d ORDER BY d) FILTER (WHERE d IS NOT NULL), '{{}}') AS duration_keys,
               coalesce(array_agg(1::bigint ORDER BY d) FILTER (WHERE d IS NOT NULL), '{{}}') AS duration_counts,
               coalesce(array_agg(w ORDER BY w) FILTER (WHERE w IS NOT NULL), '{{}}') AS wait_keys,
               coalesce(array_agg(1::bigint ORDER BY w) FILTER (WHERE w IS NOT NULL), '{{}}') AS wait_counts
          FROM ({ranges}) r
         CROSS JOIN LATERAL (  -- lateral: one index range per time range, never a scan of every job
               SELECT {period} AS g, j.collector, j.status, {_DURATION} AS duration,
                      collector_hub_stats_bucket({_DURATION}) AS d, collector_hub_stats_bucket({_WAIT}) AS w
                 FROM job_runs j
                WHERE j.started_at >= r.lo AND j.started_at < r.hi AND {collector_filter}
               OFFSET 0) x
         GROUP BY g, collector
    """


def merged(parts: str) -> str:
    """Parts (rows with ``g``, ``collector`` and a summary's columns) merged per (g, collector),
    for a summary made from shorter ones or from jobs: summed counts, the longest duration,
    the merged buckets, and the bucket of the median duration (``duration_p50_bucket``, the
    rule of :func:`rank`)."""
    return f"""
        WITH parts AS ({parts}),
        sums AS (SELECT g, collector, sum(runs) AS runs, sum(queued) AS queued, sum(running) AS running,
                        sum(completed) AS completed, sum(failed) AS failed, sum(cancelled) AS cancelled,
                        max(duration_max) AS duration_max
                   FROM parts GROUP BY g, collector),
        buckets AS (SELECT g, collector, 'd' AS kind, k, sum(n)::bigint AS n
                      FROM parts, unnest(duration_keys, duration_counts) AS u(k, n) GROUP BY g, collector, k
                    UNION ALL
                    SELECT g, collector, 'w', k, sum(n)::bigint
                      FROM parts, unnest(wait_keys, wait_counts) AS u(k, n) GROUP BY g, collector, k),
        ranked AS (SELECT *, sum(n) OVER (PARTITION BY g, collector, kind ORDER BY k) AS cum,
                          sum(n) OVER (PARTITION BY g, collector, kind) AS total
                     FROM buckets),
        figures AS (SELECT g, collector,
                           array_agg(k ORDER BY k) FILTER (WHERE kind = 'd') AS duration_keys,
                           array_agg(n ORDER BY k) FILTER (WHERE kind = 'd') AS duration_counts,
                           array_agg(k ORDER BY k) FILTER (WHERE kind = 'w') AS wait_keys,
                           array_agg(n ORDER BY k) FILTER (WHERE kind = 'w') AS wait_counts,
                           min(k) FILTER (WHERE kind = 'd' AND cum * 100 >= total * 50) AS duration_p50_bucket
                      FROM ranked GROUP BY g, collector)
        SELECT s.*, f.duration_p50_bucket, coalesce(f.duration_keys, '{{}}') AS duration_keys,
               coalesce(f.duration_counts, '{{}}') AS duration_counts, coalesce(f.wait_keys, '{{}}') AS wait_keys,
               coalesce(f.wait_counts, '{{}}') AS wait_counts
          FROM sums s LEFT JOIN figures f USING (g, collector)
    """


def rank(percent: int, total: int) -> int:
    """The rank (from 1) of the value a ``percent`` percentile is of ``total`` values:
    ceil(percent / 100 * total), in integers (sql: ``cum * 100 >= total * percent``)."""
    return -(-percent * total // 100)


def bucket_value(bucket: int | None) -> float | None:
    """What a bucket of sql/014 reads as, in seconds: 0 for bucket 0, else 2 * 1.04^(k-1) / 2.04
    ms (within 2 % of every value in it)."""
    if bucket is None:
        return None
    return 0.0 if bucket == 0 else 2 * BASE ** (bucket - 1) / (1 + BASE) / 1000


def percentile(keys: Sequence[int], counts: Sequence[int], percent: int) -> float | None:
    """The value of the bucket holding the ``rank``-th smallest of the counted values
    (``keys`` ascending, with their ``counts``)."""
    total = int(sum(counts))
    if not total:
        return None
    wanted, cum = rank(percent, total), 0
    for key, count in zip(keys, counts, strict=True):
        cum += int(count)
        if cum >= wanted:
            return bucket_value(key)
    raise AssertionError("unreachable")


def totals(parts: str) -> str:
    """Parts merged per (g, collector) for a read: the summed counts, the longest duration, and
    the merged duration and wait buckets (keys ascending, with their counts), which
    :func:`figures_of` reads the percentiles from."""
    return f"""
        WITH parts AS MATERIALIZED ({parts}),
        sums AS (SELECT g, collector, sum(runs) AS runs, sum(queued) AS queued, sum(running) AS running,
                        sum(completed) AS completed, sum(failed) AS failed, sum(cancelled) AS cancelled,
                        max(duration_max) AS duration_max
                   FROM parts GROUP BY g, collector),
        d AS (SELECT g, collector, k, sum(n)::bigint AS n
                FROM parts, unnest(duration_keys, duration_counts) AS u(k, n) GROUP BY g, collector, k),
        w AS (SELECT g, collector, k, sum(n)::bigint AS n
                FROM parts, unnest(wait_keys, wait_counts) AS u(k, n) GROUP BY g, collector, k),
        da AS (SELECT g, collector, array_agg(k ORDER BY k) AS keys, array_agg(n ORDER BY k) AS counts
                 FROM d GROUP BY g, collector),
        wa AS (SELECT g, collector, array_agg(k ORDER BY k) AS keys, array_agg(n ORDER BY k) AS counts
                 FROM w GROUP BY g, collector)
        SELECT s.*, da.keys AS duration_keys, da.counts AS duration_counts, wa.keys AS wait_keys,
               wa.counts AS wait_counts
          FROM sums s LEFT JOIN da USING (g, collector) LEFT JOIN wa USING (g, collector)
    """


def figures_of(row: dict[str, Any]) -> dict[str, Any]:
    """A row of :func:`totals` as the statistics' figures."""
    durations = (row["duration_keys"] or [], row["duration_counts"] or [])
    waits = (row["wait_keys"] or [], row["wait_counts"] or [])
    return {
        **{name: int(row[name]) for name in FIGURES},
        "collector": row["collector"],
        "g": row["g"],
        "duration_max": row["duration_max"],
        "duration_p50": percentile(*durations, 50),
        "duration_p95": percentile(*durations, 95),
        "wait_p50": percentile(*waits, 50),
        "wait_p95": percentile(*waits, 95),
    }


def stored(periods: str, group: str, collector_filter: str) -> str:
    """The stored summaries of ``periods`` (a relation of ``span_hours, period_start``) as
    parts, grouped by the ``group`` expression (over ``s``): one primary-key range each."""
    return f"""
        SELECT s.* FROM ({periods}) p
         CROSS JOIN LATERAL (
               SELECT {group} AS g, s.collector, s.runs, s.queued, s.running, s.completed, s.failed, s.cancelled,
                      s.duration_max, s.duration_p50_bucket, s.duration_keys, s.duration_counts, s.wait_keys,
                      s.wait_counts
                 FROM job_stats_summaries s
                WHERE s.span_hours = p.span_hours AND s.period_start = p.period_start AND {collector_filter}
               OFFSET 0) s
    """


def period_list(periods: Iterable[Period]) -> tuple[list[int], list[dt.datetime]]:
    spans, starts = [], []
    for span, start in periods:
        spans.append(span)
        starts.append(start)
    return spans, starts


PERIODS_PARAM = "SELECT * FROM unnest(%(spans)s::integer[], %(starts)s::timestamptz[]) AS p(span_hours, period_start)"


def floor_hour(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: dt.datetime) -> dt.datetime:
    down = floor_hour(at)
    return down if down == at else down + HOUR


def _aligned(at: dt.datetime, span: int) -> bool:
    return int((at - EPOCH) / HOUR) % span == 0


def cover(lo: dt.datetime, hi: dt.datetime) -> list[Period]:
    """The fewest periods that exactly cover the whole hours [lo, hi), longest first where
    they fit."""
    out: list[Period] = []
    at = lo
    while at < hi:
        span = next(s for s in reversed(SPANS) if _aligned(at, s) and at + s * HOUR <= hi)
        out.append((span, at))
        at += span * HOUR
    return out


def children(period: Period) -> list[Period]:
    span, start = period
    shorter = SPANS[SPANS.index(span) - 1]
    return [(shorter, start + i * shorter * HOUR) for i in range(span // shorter)]


async def stale(cur: Any, needed: Sequence[Period]) -> set[Period]:
    """Which of ``needed`` have no summary, or one made before a change to its hours."""
    if not needed:
        return set()
    spans, starts = period_list(needed)
    await cur.execute(
        f"""
        SELECT n.span_hours, n.period_start FROM ({PERIODS_PARAM}) n
          LEFT JOIN job_stats_periods p USING (span_hours, period_start)
         WHERE p.version IS DISTINCT FROM (
               SELECT coalesce(sum(c.weight), 0) FROM job_stats_changes c
                WHERE c.hour >= n.period_start AND c.hour < n.period_start + n.span_hours * interval '1 hour')
        """,
        {"spans": spans, "starts": starts},
    )
    return {(int(r["span_hours"]), r["period_start"]) for r in await cur.fetchall()}


async def build(cur: Any, missing: set[Period]) -> None:
    """Make the summaries of ``missing`` (and of any stale shorter period they are made from)
    from this transaction's snapshot, replacing stale ones."""
    todo: dict[int, set[Period]] = {span: set() for span in SPANS}
    frontier = set(missing)
    while frontier:
        for period in frontier:
            todo[period[0]].add(period)
        below = [c for p in frontier if p[0] != SPANS[0] for c in children(p)]
        known = set().union(*todo.values())
        frontier = (await stale(cur, below)) - known if below else set()
    for span in SPANS:
        if not todo[span]:
            continue
        spans, starts = period_list(sorted(todo[span]))
        params = {"spans": spans, "starts": starts}
        await cur.execute(
            f"DELETE FROM job_stats_periods p USING ({PERIODS_PARAM}) n"
            " WHERE p.span_hours = n.span_hours AND p.period_start = n.period_start",
            params,
        )
        await cur.execute(
            f"""
            INSERT INTO job_stats_periods (span_hours, period_start, version)
            SELECT n.span_hours, n.period_start,
                   (SELECT coalesce(sum(c.weight), 0) FROM job_stats_changes c
                     WHERE c.hour >= n.period_start AND c.hour < n.period_start + n.span_hours * interval '1 hour')
              FROM ({PERIODS_PARAM}) n
            """,
            params,
        )
        if span == SPANS[0]:
            ranges = (
                "SELECT p.period_start AS lo, p.period_start + interval '1 hour' AS hi FROM (" + PERIODS_PARAM + ") p"
            )
            parts = raw_parts(ranges, "date_trunc('hour', j.started_at, 'UTC')", "true")
        else:
            shorter = SPANS[SPANS.index(span) - 1]
            kids = f"""
                SELECT {shorter} AS span_hours, n.period_start + i * interval '{shorter} hours' AS period_start,
                       n.period_start AS parent
                  FROM ({PERIODS_PARAM}) n, generate_series(0, {span // shorter - 1}) i
            """
            parts = f"""
                SELECT k.parent AS g, s.collector, s.runs, s.queued, s.running, s.completed, s.failed, s.cancelled,
                       s.duration_max, s.duration_p50_bucket, s.duration_keys, s.duration_counts, s.wait_keys,
                       s.wait_counts
                  FROM ({kids}) k JOIN job_stats_summaries s USING (span_hours, period_start)
            """
        await cur.execute(
            f"""
            INSERT INTO job_stats_summaries (span_hours, period_start, collector, runs, queued, running, completed,
                                             failed, cancelled, duration_max, duration_p50_bucket, duration_keys,
                                             duration_counts, wait_keys, wait_counts)
            SELECT {span}, m.g, m.collector, m.runs, m.queued, m.running, m.completed, m.failed, m.cancelled,
                   m.duration_max, m.duration_p50_bucket, m.duration_keys, m.duration_counts, m.wait_keys,
                   m.wait_counts
              FROM ({merged(parts)}) m
            """,
            params,
        )


COMPACT = """
    WITH merged AS (
        DELETE FROM job_stats_changes
         WHERE hour IN (SELECT hour FROM job_stats_changes GROUP BY hour HAVING count(*) > 1)
        RETURNING hour, weight)
    INSERT INTO job_stats_changes (hour, weight) SELECT hour, sum(weight) FROM merged GROUP BY hour
"""
