"""GET /api/collectors/stats from summaries of closed hours equals the same figures computed
from the jobs themselves, on random history, for every window, and stays equal whoever changes
the history afterwards: raw SQL, a bulk load with session_replication_role = replica, updates,
deletes, and (after collector_hub_stats_forget()) a load with the triggers disabled; with every
kind of summary (hours, days, 8- and 64-day blocks, and the composites of a window's hour) and
requests that make the same summaries at once (server/runs/stats_summaries.py,
sql/014_stats_summaries.sql)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import math
import random
from typing import Any

import pytest

from server.runs import stats_summaries as summaries
from tests.support.database import truncate
from tests.support.runs import get_json

# Whole hours and days back from now, so never aligned to an hour: hourly series (up to 48h)
# and daily ones, windows that start and end inside a day, and every length of composite.
WINDOWS = ["1h", "2h", "5h", "24h", "25h", "48h", "49h", "3d", "7d", "13d", "30d", "89d", "90d"]
COLLECTORS = ["alpha", "beta", "gamma", "delta"]

# Jobs requested at random times over the last 95 days (and a few in the last minutes), with
# random statuses, waits from 0 to hours and durations from under a millisecond to two days
# (and a few negative ones, as a careless import may have).
IMPORT = """
    SET session_replication_role = replica;
    INSERT INTO job_batches (batch_id, status, started_at)
    SELECT 'bc_' || lpad((%(first)s + i)::text, 8, '0'), 'completed', now() FROM generate_series(0, %(n)s - 1) i;
    INSERT INTO job_runs (job_id, batch_id, collector, job_name, status, started_at, run_started_at, ended_at)
    SELECT 'xx_' || lpad((%(first)s + i)::text, 8, '0'), 'bc_' || lpad((%(first)s + i)::text, 8, '0'),
           (%(collectors)s::text[])[1 + (i %% 4)], 'job', status, at, started,
           CASE WHEN status IN ('completed', 'failed', 'cancelled') AND started IS NOT NULL
                THEN started + make_interval(secs => CASE WHEN random() < 0.02 THEN -random() * 5
                                                          ELSE exp(random() * ln(172800 / 0.0001)) * 0.0001 END)
                WHEN status = 'cancelled' THEN at END
      FROM (SELECT i, at, status,
                   CASE WHEN status = 'queued' OR (status = 'cancelled' AND random() < 0.5) THEN NULL
                        ELSE at + make_interval(secs => exp(random() * ln(20000.0)) - 1) END AS started
              FROM (SELECT i, %(lo)s::timestamptz + random() * (%(hi)s::timestamptz - %(lo)s::timestamptz) AS at,
                           (ARRAY['completed', 'completed', 'completed', 'failed', 'cancelled', 'queued',
                                  'running'])[1 + floor(random() * 7)::int] AS status
                      FROM generate_series(0, %(n)s - 1) i) r) j;
    SET session_replication_role = origin;
"""


def bulk_import(db: Any, first: int, n: int, lo: dt.datetime, hi: dt.datetime) -> None:
    with db.cursor() as cur:
        cur.execute(IMPORT, {"first": first, "n": n, "lo": lo, "hi": hi, "collectors": COLLECTORS})


def value(bucket: int) -> float:
    """What a bucket reads as, as docs/COLLECTOR_RUN_TRACKING_API.md defines it."""
    return 0.0 if bucket == 0 else 2 * 1.04 ** (bucket - 1) / 2.04 / 1000


def nearest_rank(buckets: list[int], percent: int) -> float | None:
    if not buckets:
        return None
    ordered = sorted(buckets)
    return round(value(ordered[math.ceil(percent * len(ordered) / 100) - 1]), 3)


def expected(db: Any, since: dt.datetime, unit: str, only: list[str] | None) -> dict[str, Any]:
    """The figures straight from the jobs requested since ``since``."""
    with db.cursor() as cur:
        cur.execute(
            """
            SELECT collector, status, date_trunc(%(unit)s, started_at, 'UTC') AS bucket,
                   extract(epoch FROM ended_at - run_started_at)::float8 AS duration,
                   collector_hub_stats_bucket(CASE WHEN status IN ('completed', 'failed') AND run_started_at IS NOT NULL
                       THEN extract(epoch FROM ended_at - run_started_at)::float8 END) AS d,
                   collector_hub_stats_bucket(extract(epoch FROM run_started_at - started_at)::float8) AS w
              FROM job_runs WHERE started_at >= %(since)s
            """,
            {"unit": unit, "since": since},
        )
        jobs = cur.fetchall()
    out: dict[str, Any] = {}
    for collector, status, bucket, duration, d, w in jobs:
        if only is not None and collector not in only:
            continue
        c = out.setdefault(collector, {"statuses": {}, "d": [], "w": [], "max": None, "series": {}})
        c["statuses"][status] = c["statuses"].get(status, 0) + 1
        point = c["series"].setdefault(bucket, {"runs": 0, "failed": 0, "d": []})
        point["runs"] += 1
        point["failed"] += status == "failed"
        if d is not None:
            c["d"].append(d)
            point["d"].append(d)
            c["max"] = duration if c["max"] is None else max(c["max"], duration)
        if w is not None:
            c["w"].append(w)
    return {
        name: {
            "runs": sum(c["statuses"].values()),
            "by_status": c["statuses"],
            "duration": [
                nearest_rank(c["d"], 50),
                nearest_rank(c["d"], 95),
                None if c["max"] is None else round(c["max"], 3),
            ],
            "wait": [nearest_rank(c["w"], 50), nearest_rank(c["w"], 95)],
            "series": {
                b.isoformat(): (p["runs"], p["failed"], nearest_rank(p["d"], 50))
                for b, p in sorted(c["series"].items())
            },
        }
        for name, c in out.items()
    }


def served(body: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for c in body["collectors"]:
        if not c["runs"]:
            continue
        d, w = c["duration_seconds"], c["queue_wait_seconds"]
        out[c["collector"]] = {
            "runs": c["runs"],
            "by_status": {s: n for s, n in c["by_status"].items() if n},
            "duration": [d["p50"], d["p95"], d["max"]],
            "wait": [w["p50"], w["p95"]],
            "series": {
                dt.datetime.fromisoformat(p["start"]).isoformat(): (
                    p["runs"],
                    p["failed"],
                    p["median_duration_seconds"],
                )
                for p in c["series"]
                if p["runs"]
            },
        }
    return out


async def check(client: Any, db: Any, windows: list[str], only: list[str] | None = None) -> None:
    for window in windows:
        query = f"window={window}" + (f"&collectors={','.join(only)}" if only else "")
        body = await get_json(client, f"/api/collectors/stats?{query}")
        since = dt.datetime.fromisoformat(body["since"])
        assert served(body) == expected(db, since, body["interval"], only), window


@pytest.fixture
def history(db: Any) -> None:
    with db.cursor() as cur:
        cur.execute(truncate("job_batches"))
    now = dt.datetime.now(dt.UTC)
    bulk_import(db, 0, 6000, now - dt.timedelta(days=95), now)
    bulk_import(db, 6000, 200, now - dt.timedelta(minutes=70), now)  # the unsettled edge


def periods(db: Any) -> list[tuple[Any, ...]]:
    with db.cursor() as cur:
        cur.execute("SELECT span_hours, period_start, made_at FROM job_stats_periods ORDER BY 1, 2")
        return cur.fetchall()


async def test_every_window_equals_the_figures_from_the_jobs_and_summaries_are_kept(client, db, history) -> None:  # type: ignore[no-untyped-def]
    await check(client, db, WINDOWS)
    await check(client, db, ["90d", "24h"], only=["beta", "gamma"])
    made = periods(db)
    # hours, days and 8-day blocks (a 64-day block only when one fits in the 90 days)
    assert {1, 24, 192} <= {span for span, _, _ in made}
    await get_json(client, "/api/collectors/stats?window=90d")
    assert periods(db) == made  # read again, not made again


async def test_later_changes_to_closed_hours_are_seen_whoever_makes_them(client, db, history) -> None:  # type: ignore[no-untyped-def]
    await check(client, db, ["90d", "30d", "48h"])
    now = dt.datetime.now(dt.UTC)
    with db.cursor() as cur:  # raw SQL, triggers on: a job requested 20 days ago
        cur.execute("INSERT INTO job_batches (batch_id) VALUES ('bc_00900000')")
        cur.execute(
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status, started_at)"
            " VALUES ('xx_00900000', 'bc_00900000', 'alpha', 'job', 'queued', %s)",
            (now - dt.timedelta(days=20),),
        )
        cur.execute("UPDATE job_runs SET status = 'running' WHERE job_id = 'xx_00900000'")
        cur.execute("UPDATE job_runs SET status = 'failed' WHERE job_id = 'xx_00900000'")
    await check(client, db, ["90d", "30d"])
    # a bulk load with the triggers off (session_replication_role = replica) into old days
    bulk_import(db, 7000, 300, now - dt.timedelta(days=60), now - dt.timedelta(days=50))
    await check(client, db, ["90d", "30d"])
    with db.cursor() as cur:  # deletes, and rows moved to other days, as a replica would apply them
        cur.execute("DELETE FROM job_batches WHERE batch_id IN (SELECT batch_id FROM job_runs"
                    " WHERE started_at < now() - interval '40 days' AND collector = 'beta' LIMIT 100)")  # fmt: skip
        cur.execute("SET session_replication_role = replica")
        cur.execute(
            "UPDATE job_runs SET started_at = started_at - interval '3 days'"
            " WHERE job_id IN (SELECT job_id FROM job_runs WHERE started_at < now() - interval '2 days' LIMIT 200)"
        )
        cur.execute("SET session_replication_role = origin")
    await check(client, db, ["90d", "30d", "7d"])


async def test_a_load_with_every_trigger_disabled_is_seen_after_forget(client, db, history) -> None:  # type: ignore[no-untyped-def]
    await check(client, db, ["30d"])
    now = dt.datetime.now(dt.UTC)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE job_runs DISABLE TRIGGER ALL")
    try:
        bulk_import(db, 8000, 300, now - dt.timedelta(days=25), now - dt.timedelta(days=24))
    finally:
        with db.cursor() as cur:
            cur.execute("ALTER TABLE job_runs ENABLE TRIGGER ALL")
            cur.execute("SELECT collector_hub_stats_forget()")  # docs/DEPLOYMENT.md
    await check(client, db, ["30d"])


def composites(db: Any) -> list[tuple[Any, ...]]:
    return [p for p in periods(db) if not summaries.aligned((p[0], p[1]))]


async def test_requests_that_make_the_same_summaries_at_once_all_answer_the_figures_from_the_jobs(  # type: ignore[no-untyped-def]
    client, db, history
) -> None:
    with db.cursor() as cur:
        cur.execute("SELECT collector_hub_stats_forget()")
    windows = ["90d", "90d", "89d", "30d", "49h", "24h", "90d", "7d"]
    bodies = await asyncio.gather(*(get_json(client, f"/api/collectors/stats?window={w}") for w in windows))
    for window, body in zip(windows, bodies, strict=True):
        since = dt.datetime.fromisoformat(body["since"])
        assert served(body) == expected(db, since, body["interval"], None), window
    assert composites(db)  # the windows' settled hours, each one period (one row each: the primary key)


async def test_composites_are_dropped_two_hours_after_they_were_made_and_blocks_are_kept(  # type: ignore[no-untyped-def]
    client, db, history
) -> None:
    await check(client, db, ["90d", "30d"])
    old = composites(db)
    assert old
    with db.cursor() as cur:
        cur.execute("UPDATE job_stats_periods SET made_at = made_at - interval '3 hours'")
        cur.execute("INSERT INTO job_batches (batch_id) VALUES ('bc_00900001')")
        cur.execute(  # a change to a closed hour: the next request makes summaries again, then tidies
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status, started_at)"
            " VALUES ('xx_00900001', 'bc_00900001', 'alpha', 'job', 'queued', now() - interval '10 days')"
        )
    await check(client, db, ["90d"])
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM job_stats_periods WHERE made_at < now() - interval '2 hours'")
        (kept,) = cur.fetchone()
    assert kept > 0  # the aligned periods made before, hours and days
    assert not [p for p in composites(db) if p[2] < dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)]
    await check(client, db, ["30d", "7d"])  # made again where wanted


def test_a_composite_is_made_from_periods_that_tile_it_exactly() -> None:
    # Over half a million hours in all: the checks are list comparisons, not a generator per
    # pair, which halves what they cost on top of the walk itself.
    rng = random.Random(26)
    hour = summaries.HOUR
    for _ in range(500):
        start = summaries.EPOCH + hour * rng.randrange(490_000, 500_000)
        period = (rng.randrange(1, 2200), start)
        seen, todo = [], [period]
        while todo:  # every hour of the period, from its descendants' hours, once each
            p = todo.pop()
            kids = summaries.children(p)
            if kids:  # most are hours, which have none (and so no shorter ones to check)
                spans = [span for span, _ in kids]
                assert max(spans) < p[0], p
                assert sum(spans) == p[0] and kids[0][1] == p[1], p
                assert [at + span * hour for span, at in kids[:-1]] == [at for _, at in kids[1:]], p  # end to end
                assert len(kids) <= 24, p  # a composite: its runs, or one run of at most 23
                todo.extend(kids)
            else:
                seen.append(p[1])
        seen.sort()
        assert seen == list(itertools.accumulate(itertools.repeat(hour, period[0] - 1), initial=start))
