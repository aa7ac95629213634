"""Summaries of closed hours, days and longer blocks of job history, for the statistics
(``GET /api/collectors/stats``, server/runs/stats.py), made on demand.

- An aligned period is ``SPANS`` hours long (an hour, a day, 8 days, 64 days) and starts at a
  multiple of its length since 1970-01-01 UTC; it is kept. Any other run of whole hours is a
  composite: a window's settled hours, or a run of one span inside it (e.g. the hours of its
  first day); it serves the requests of an hour and is dropped two hours after it was made.
  Only settled hours are summarised: those that ended five minutes or more before the request
  (``collector_hub_stats_settled_before()``, sql/014).
- A summary keeps, per collector, the counts by status, the longest duration and the duration
  and queue-wait buckets of sql/014 (which merge); an hour is summarised from the jobs, an
  aligned period from its 24 (or 8) shorter ones, a composite from its cover's runs (at most
  seven) or from the at most 23 periods of its one run (:func:`children`).
- A summary is used only while the changes recorded for its hours (``job_stats_changes``,
  written in the writer's transaction by triggers that fire whoever writes, sql/014) weigh what
  they weighed when it was made; otherwise it is made again, in the same snapshot that reads it.
- A window reads one summary per collector for its totals (the composite of its settled hours)
  and one per bucket of its series, plus the raw jobs of its two unsettled edges (under an hour
  at the start, the last hour or so at the end), and merges them in Python (:class:`Tally`).
"""

from __future__ import annotations

import datetime as dt
import functools
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
        SELECT x.g, x.collector, count(*) AS runs,
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
                -- in the time index's order: else the planner may take the status index with a
                -- skip scan, 15 times the pages (PostgreSQL 18, EXPLAIN at a million jobs)
                ORDER BY j.started_at DESC
               OFFSET 0) x
         GROUP BY x.g, x.collector
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


@functools.cache
def bucket_value(bucket: int | None) -> float | None:
    """What a bucket of sql/014 reads as, in seconds: 0 for bucket 0, else 2 * 1.04^(k-1) / 2.04
    ms (within 2 % of every value in it)."""
    if bucket is None:
        return None
    return 0.0 if bucket == 0 else 2 * BASE ** (bucket - 1) / (1 + BASE) / 1000


def rank(percent: int, total: int) -> int:
    """The rank (from 1) of the value a ``percent`` percentile is of ``total`` values:
    ceil(percent / 100 * total), in integers (sql: ``cum * 100 >= total * percent``)."""
    return -(-percent * total // 100)


def percentile(buckets: Sequence[tuple[int, int]], percent: int) -> float | None:
    """The value of the bucket holding the ``rank``-th smallest of the counted values
    (``buckets``: (key, count), keys ascending)."""
    total = sum(count for _, count in buckets)
    if not total:
        return None
    wanted, cum = rank(percent, total), 0
    for key, count in buckets:
        cum += count
        if cum >= wanted:
            return bucket_value(key)
    raise AssertionError("unreachable")


class Tally:
    """Parts (rows with a summary's columns) merged in Python, for a read: summed counts, the
    longest duration, merged buckets. A read merges a few dozen rows of a few dozen buckets,
    cheaper here than in SQL (unnest, group, sort), and only its figures leave."""

    __slots__ = ("counts", "duration_max", "durations", "waits")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(FIGURES, 0)
        self.duration_max: float | None = None
        self.durations: dict[int, int] = {}
        self.waits: dict[int, int] = {}

    def add(self, row: dict[str, Any]) -> None:
        for name in FIGURES:
            self.counts[name] += row[name]
        longest = row["duration_max"]
        if longest is not None and (self.duration_max is None or longest > self.duration_max):
            self.duration_max = longest
        for into, keys, counts in (
            (self.durations, row["duration_keys"], row["duration_counts"]),
            (self.waits, row["wait_keys"], row["wait_counts"]),
        ):
            for key, count in zip(keys, counts, strict=True):
                into[key] = into.get(key, 0) + count

    def figures(self) -> dict[str, Any]:
        durations, waits = sorted(self.durations.items()), sorted(self.waits.items())
        return {
            **self.counts,
            "duration_max": self.duration_max,
            "duration_p50": percentile(durations, 50),
            "duration_p95": percentile(durations, 95),
            "wait_p50": percentile(waits, 50),
            "wait_p95": percentile(waits, 95),
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


def period_list(periods: Iterable[Period]) -> tuple[list[int], list[int]]:
    """Periods as two parameters: spans, and starts in hours since ``EPOCH`` (integers: psycopg2
    adapts a datetime in Python, a millisecond per hundred)."""
    spans, starts = [], []
    for span, start in periods:
        spans.append(span)
        starts.append(int((start - EPOCH) / HOUR))
    return spans, starts


def periods_param(spans: str, starts: str, *extra: str) -> str:
    """The relation (``span_hours, period_start``, then ``extra``, then ``h``: the start in
    hours since ``EPOCH``) of the parameters ``spans`` and ``starts`` (as :func:`period_list`
    makes them)."""
    more = "".join(f", %({name})s::integer[]" for name in extra)
    return (
        "SELECT p.span_hours, timestamptz 'epoch' + p.h * interval '1 hour' AS period_start"
        + "".join(f", p.{name}" for name in extra)
        + ", p.h"
        + f" FROM unnest(%({spans})s::integer[], %({starts})s::bigint[]{more}) AS p(span_hours, h"
        + "".join(f", {name}" for name in extra)
        + ")"
    )


PERIODS_PARAM = periods_param("spans", "starts")


@functools.lru_cache(maxsize=8192)
def hour_start(hours: int) -> dt.datetime:
    """The hour ``hours`` after ``EPOCH`` (a bucket of a series: the same few thousand again)."""
    return EPOCH + hours * HOUR


def floor_hour(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: dt.datetime) -> dt.datetime:
    return floor_hour(at) if floor_hour(at) == at else floor_hour(at) + HOUR


def _aligned(at: dt.datetime, span: int) -> bool:
    return int((at - EPOCH) / HOUR) % span == 0


def cover(lo: dt.datetime, hi: dt.datetime) -> list[Period]:
    """The fewest periods that exactly cover the whole hours [lo, hi), longest where they fit."""
    out: list[Period] = []
    at = lo
    while at < hi:
        span = next(s for s in reversed(SPANS) if _aligned(at, s) and at + s * HOUR <= hi)
        out.append((span, at))
        at += span * HOUR
    return out


def aligned(period: Period) -> bool:
    """A period of one of the ``SPANS`` that starts at a multiple of its length (kept for good);
    any other run of whole hours is a composite (made for the windows of an hour, then dropped)."""
    return period[0] in SPANS and _aligned(period[1], period[0])


def children(period: Period) -> list[Period]:
    """What a summary of ``period`` is merged from: an hour from its jobs (none); an aligned
    period from its 24 or 8 shorter ones; a composite from its cover, where that is one span's
    run, else from its cover's runs (each run of one span a period of its own, so that the next
    hour's window reuses its middle runs and makes only a few small ones; a run stays inside one
    period of the next span, so that its first and last day are a daily series' partial days)."""
    span, start = period
    if span == 1:
        return []
    if aligned(period):
        shorter = SPANS[SPANS.index(span) - 1]
        return [(shorter, start + i * shorter * HOUR) for i in range(span // shorter)]
    pieces = cover(start, start + span * HOUR)
    runs: list[list[Period]] = []
    for piece in pieces:
        if runs and runs[-1][0][0] == piece[0] and _block(runs[-1][0]) == _block(piece):
            runs[-1].append(piece)
        else:
            runs.append([piece])
    if len(runs) == 1:
        return pieces
    return [(run[0][0] * len(run), run[0][1]) if len(run) > 1 else run[0] for run in runs]


def _block(period: Period) -> int:
    """Which block of the next longer span a period is in (a run of one span stays in one: at
    most 23 hours, or 7 days or 8-day blocks)."""
    span = period[0]
    longer = SPANS[SPANS.index(span) + 1] if span != SPANS[-1] else 0
    return int((period[1] - EPOCH) / HOUR) // longer if longer else 0


def _depth(period: Period, known: dict[Period, int]) -> int:
    """0 for an hour, else one more than its deepest child: the order summaries are made in."""
    if aligned(period):  # without walking its every hour
        return SPANS.index(period[0])
    if period not in known:
        kids = children(period)
        known[period] = 1 + max(_depth(kid, known) for kid in kids) if kids else 0
    return known[period]


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


# The periods being made, numbered from 1 (``g``, the number a part is merged under).
_NUMBERED = (
    "SELECT n.span_hours, timestamptz 'epoch' + n.h * interval '1 hour' AS period_start, n.g"
    " FROM unnest(%(spans)s::integer[], %(starts)s::bigint[]) WITH ORDINALITY AS n(span_hours, h, g)"
)
_FROM_JOBS = raw_parts(
    f"SELECT n.g, n.period_start AS lo, n.period_start + interval '1 hour' AS hi FROM ({_NUMBERED}) n",
    "r.g",
    "true",
)
_FROM_SHORTER = f"""
    SELECT k.g, s.collector, s.runs, s.queued, s.running, s.completed, s.failed, s.cancelled, s.duration_max,
           s.duration_p50_bucket, s.duration_keys, s.duration_counts, s.wait_keys, s.wait_counts
      FROM ({periods_param("kid_spans", "kid_starts", "kid_of")}) AS k(span_hours, period_start, g)
      JOIN job_stats_summaries s USING (span_hours, period_start)
"""


def _make(parts: str) -> str:
    """The statements that replace the summaries of the numbered periods with ``parts`` merged."""
    return f"""
        DELETE FROM job_stats_periods p USING ({PERIODS_PARAM}) n
         WHERE p.span_hours = n.span_hours AND p.period_start = n.period_start;
        INSERT INTO job_stats_periods (span_hours, period_start, version)
        SELECT n.span_hours, n.period_start,
               (SELECT coalesce(sum(c.weight), 0) FROM job_stats_changes c
                 WHERE c.hour >= n.period_start AND c.hour < n.period_start + n.span_hours * interval '1 hour')
          FROM ({PERIODS_PARAM}) n;
        INSERT INTO job_stats_summaries (span_hours, period_start, collector, runs, queued, running, completed,
                                         failed, cancelled, duration_max, duration_p50_bucket, duration_keys,
                                         duration_counts, wait_keys, wait_counts)
        SELECT (%(spans)s::integer[])[m.g], timestamptz 'epoch' + (%(starts)s::bigint[])[m.g] * interval '1 hour',
               m.collector, m.runs, m.queued,
               m.running, m.completed, m.failed, m.cancelled, m.duration_max, m.duration_p50_bucket,
               m.duration_keys, m.duration_counts, m.wait_keys, m.wait_counts
          FROM ({merged(parts)}) m
    """


_MAKE_FROM_JOBS = _make(_FROM_JOBS)
_MAKE_FROM_SHORTER = _make(_FROM_SHORTER)


async def build(cur: Any, missing: set[Period]) -> None:
    """Make the summaries of ``missing`` (and of any stale shorter period they are made from)
    from this transaction's snapshot, replacing stale ones: one statement per depth."""
    todo, frontier = set(missing), set(missing)
    while frontier:
        below = {kid for period in frontier for kid in children(period)} - todo
        frontier = await stale(cur, sorted(below)) if below else set()
        todo |= frontier
    depths: dict[Period, int] = {}
    by_depth: dict[int, list[Period]] = {}
    for period in sorted(todo):
        by_depth.setdefault(_depth(period, depths), []).append(period)
    for depth in sorted(by_depth):
        periods = by_depth[depth]
        spans, starts = period_list(periods)
        params: dict[str, Any] = {"spans": spans, "starts": starts}
        if depth == 0:
            await cur.execute(_MAKE_FROM_JOBS, params)
            continue
        kids = [(kid, g) for g, period in enumerate(periods, 1) for kid in children(period)]
        params["kid_spans"], params["kid_starts"] = period_list(kid for kid, _ in kids)
        params["kid_of"] = [g for _, g in kids]
        await cur.execute(_MAKE_FROM_SHORTER, params)


# After a request that made summaries, in a transaction of its own: merge each hour's change
# rows into one (the sums stay), and drop composites made over two hours ago (a window's
# composites serve the requests of one hour; they are made again if ever wanted).
COMPACT = """
    WITH merged AS (
        DELETE FROM job_stats_changes
         WHERE hour IN (SELECT hour FROM job_stats_changes GROUP BY hour HAVING count(*) > 1)
        RETURNING hour, weight)
    INSERT INTO job_stats_changes (hour, weight) SELECT hour, sum(weight) FROM merged GROUP BY hour;
    DELETE FROM job_stats_periods
     WHERE made_at < now() - interval '2 hours'
       AND NOT (span_hours = ANY(%(spans)s::integer[])
                AND mod(extract(epoch FROM period_start)::bigint / 3600, span_hours) = 0);
"""
COMPACT_PARAMS = {"spans": list(SPANS)}
