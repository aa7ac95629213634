"""Firing schedules against a real PostgreSQL with an injected clock: a whole day of minutes
across daylight-saving changes, overlap with a long-running collector, catch-up after
downtime, several schedulers racing, and edits or deletes while a schedule is due."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
import pytest

from collectors.registry import CollectorSpec, load_registry
from server.audit.actor import Actor
from server.audit.entry import by
from server.db import database
from server.db.database import create_pool
from server.observability.metrics import sample_value
from server.runner.runner import Runner
from server.runs import store as runs
from server.schedules import store
from server.schedules.definition import ScheduleDefinition
from server.schedules.scheduler import Scheduler
from server.settings import Settings
from tests.support.conditions import eventually

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
PROGRAMS = Path(__file__).parent / "collector_programs"

# Changes made straight through the store: the audit trail names the test as the system.
BY_TEST = by(Actor("test", "system"), "schedule.update")


class FakeClock:
    """The scheduler's ``now``, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, now: dt.datetime) -> None:
        self.now = now.astimezone(dt.UTC)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


@pytest.fixture
def clean(db: psycopg2.extensions.connection) -> Iterator[None]:
    # DELETE, not TRUNCATE: the few rows a test leaves go for well under a millisecond, where a
    # TRUNCATE makes new files for every table it reaches (about 10 ms of PostgreSQL CPU each).
    # The foreign keys cascade to the same tables (schedule_fires, job_runs, the outbox).
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches; DELETE FROM schedules")
    yield


@pytest.fixture
async def pool(database_url: str, clean: None) -> AsyncIterator[Any]:
    async with create_pool(database_url, 1, 5) as pool:
        yield pool


@pytest.fixture
def registry(tmp_path: Path) -> dict[str, CollectorSpec]:
    found = load_registry()
    found["slow"] = CollectorSpec(
        "slow", (sys.executable, str(PROGRAMS / "hang.py")), {"PID_FILE": str(tmp_path / "pids")}
    )
    return found


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path, run_collectors=False, schedule_misfire_grace=60)


def scheduler(pool: Any, registry: dict[str, CollectorSpec], settings: Settings, clock: FakeClock) -> Scheduler:
    return Scheduler(pool, registry, settings, clock)


async def add(pool: Any, clock: FakeClock, name: str, cron: str, **fields: Any) -> str:
    fields.setdefault("collectors", ("demo",))
    return await store.create_schedule(pool, ScheduleDefinition(name=name, cron=cron, **fields), clock(), BY_TEST)


def fires(db: psycopg2.extensions.connection) -> list[dict[str, Any]]:
    with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "SELECT s.name, f.due_at, f.outcome, f.batch_id, b.schedule_id AS batch_schedule, b.scheduled_for"
            " FROM schedule_fires f JOIN schedules s USING (schedule_id)"
            " LEFT JOIN job_batches b ON b.batch_id = f.batch_id ORDER BY f.due_at, s.name"
        )
        return list(cur.fetchall())


def batch_count(db: psycopg2.extensions.connection) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM job_batches")
        return int(cur.fetchone()[0])


@pytest.mark.parametrize(
    ("day", "hourly", "quarterly"), [(dt.date(2026, 3, 8), 23, 92), (dt.date(2026, 11, 1), 25, 100)]
)
async def test_every_minute_of_a_dst_day_in_new_york(pool, registry, settings, db, day, hourly, quarterly) -> None:  # type: ignore[no-untyped-def]
    start = dt.datetime.combine(day, dt.time(), NEW_YORK).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), NEW_YORK).astimezone(dt.UTC)
    clock = FakeClock(start - dt.timedelta(minutes=1))
    common = {"timezone": "America/New_York", "overlap": "queue"}
    for name, expression in [("at-0130", "30 1 * * *"), ("at-0230", "30 2 * * *"), ("hourly", "0 * * * *"),
                             ("quarterly", "*/15 * * * *")]:  # fmt: skip
        await add(pool, clock, name, expression, **common)
    firing = scheduler(pool, registry, settings, clock)
    minute = start
    while minute < end:  # every real minute of the local day, each looked at half a second late
        clock.set(minute + dt.timedelta(seconds=0.5))
        await firing.tick()
        minute += dt.timedelta(minutes=1)
    recorded = fires(db)
    by_name: dict[str, list[dt.datetime]] = {}
    for row in recorded:
        assert row["outcome"] == "fired" and row["batch_id"] is not None
        assert row["scheduled_for"] == row["due_at"]  # the batch records the due time it fired for
        by_name.setdefault(row["name"], []).append(row["due_at"].astimezone(NEW_YORK))
    assert [t.strftime("%H:%M%z") for t in by_name["at-0130"]] == ["01:30-0400" if day.month == 11 else "01:30-0500"]
    assert [t.strftime("%H:%M%z") for t in by_name["at-0230"]] == ["02:30-0500" if day.month == 11 else "03:00-0400"]
    # Distinct instants (compared in UTC: Python equates 01:00 EDT and 01:00 EST in one zone).
    for name, count in (("hourly", hourly), ("quarterly", quarterly)):
        assert len({t.astimezone(dt.UTC) for t in by_name[name]}) == len(by_name[name]) == count
    assert batch_count(db) == len(recorded) == 2 + hourly + quarterly


async def test_overlap_skip_holds_while_a_long_collector_runs(pool, registry, settings, db, database_url) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    await add(pool, clock, "slow-skip", "* * * * *", collectors=("slow",))
    await add(pool, clock, "slow-queue", "* * * * *", collectors=("slow",), overlap="queue")
    firing = scheduler(pool, registry, settings, clock)
    runner_settings = Settings(database_url=database_url, runner_concurrency=8, runner_poll_interval=0.05,
                               cancel_grace_period=2)  # fmt: skip
    runner = Runner(pool, database_url, registry, runner_settings)
    await runner.start()
    try:
        clock.set(at("2026-06-01T10:00:01+00:00"))
        first = {r.name: r for r in await firing.tick()}
        assert first["slow-skip"].outcome == first["slow-queue"].outcome == "fired"

        async def both_running() -> bool:
            async with database.cursor(pool) as cur:
                await cur.execute("SELECT count(*) AS n FROM job_runs WHERE status = 'running'")
                return int((await cur.fetchone())["n"]) == 2

        # Writes go through the pool, not the test's blocking connection: the runner shares
        # this event loop and may hold a row lock across an await.
        await eventually(both_running, what="both first batches running")
        for minute in ("10:01", "10:02"):
            clock.set(at(f"2026-06-01T{minute}:01+00:00"))
            results = {r.name: r for r in await firing.tick()}
            assert results["slow-skip"].outcome == "skipped_overlap"
            assert str(first["slow-skip"].batch_id) in (results["slow-skip"].detail or "")
            assert results["slow-queue"].outcome == "fired"
        await runs.cancel_batch(pool, str(first["slow-skip"].batch_id))  # the long batch of the skip schedule ends
        clock.set(at("2026-06-01T10:03:01+00:00"))
        results = {r.name: r for r in await firing.tick()}
        assert results["slow-skip"].outcome == "fired"
    finally:
        try:
            # Cancelled batch by batch, as the API does: the batch row is locked before its jobs,
            # the order every writer keeps (server/runs/queue.py). One UPDATE of every job would
            # lock the jobs first, and deadlock with the runner recording a pid or a progress
            # line for one of them (seen on a loaded machine: the test failed with
            # DeadlockDetected, and the runner, never stopped, outlived the pool).
            async with database.cursor(pool) as cur:
                await cur.execute("SELECT batch_id FROM job_batches WHERE NOT collector_hub_is_terminal(status)")
                active = [row["batch_id"] for row in await cur.fetchall()]
            for batch_id in active:
                await runs.cancel_batch(pool, batch_id)
        finally:
            await runner.stop()
    outcomes = [(r["name"], r["due_at"].strftime("%H:%M"), r["outcome"]) for r in fires(db) if r["name"] == "slow-skip"]
    assert outcomes == [
        ("slow-skip", "10:00", "fired"),
        ("slow-skip", "10:01", "skipped_overlap"),
        ("slow-skip", "10:02", "skipped_overlap"),
        ("slow-skip", "10:03", "fired"),
    ]


@pytest.mark.parametrize(("catch_up", "fired"), [("none", []), ("latest", ["10:10"])])
async def test_catch_up_after_the_servers_were_down_over_two_due_times(  # type: ignore[no-untyped-def]
    pool, registry, settings, db, catch_up, fired
) -> None:
    clock = FakeClock(at("2026-06-01T10:00:30+00:00"))
    name = f"every-five-{catch_up}"
    await add(pool, clock, name, "*/5 * * * *", catch_up=catch_up, overlap="queue")
    missed_before = sample_value("collector_hub_schedule_fires_total", {"schedule": name, "outcome": "skipped_missed"})
    firing = scheduler(pool, registry, settings, clock)
    clock.set(at("2026-06-01T10:12:00+00:00"))  # down from 10:00:30: 10:05 and 10:10 passed unseen
    [result] = await firing.tick()
    assert [r["due_at"].strftime("%H:%M") for r in fires(db)] == fired
    assert batch_count(db) == len(fired)
    assert result.missed == 2 - len(fired)
    missed_after = sample_value("collector_hub_schedule_fires_total", {"schedule": name, "outcome": "skipped_missed"})
    assert missed_after - missed_before == 2 - len(fired)
    assert await firing.tick() == []  # dealt with: the next due time is 10:15
    clock.set(at("2026-06-01T10:15:00.200000+00:00"))
    [on_time] = await firing.tick()
    assert on_time.outcome == "fired" and on_time.missed == 0


async def test_a_due_time_within_the_grace_fires_whatever_the_catch_up(pool, registry, settings, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T10:00:30+00:00"))
    await add(pool, clock, "late-but-on-time", "*/5 * * * *")
    clock.set(at("2026-06-01T10:10:40+00:00"))  # 10:05 missed; 10:10 is 40 s late, within 60 s
    [result] = await firing_tick(pool, registry, settings, clock)
    assert (result.outcome, result.missed) == ("fired", 1)
    assert [r["due_at"].strftime("%H:%M") for r in fires(db)] == ["10:10"]


async def firing_tick(pool: Any, registry: Any, settings: Settings, clock: FakeClock) -> list[store.FireResult]:
    return await scheduler(pool, registry, settings, clock).tick()


async def test_three_schedulers_fire_each_due_time_exactly_once(pool, registry, settings, db, database_url) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T09:59:59+00:00"))
    for i in range(5):
        await add(pool, clock, f"race-{i}", "* * * * *", overlap="queue")
    async with create_pool(database_url, 1, 3) as pool_b, create_pool(database_url, 1, 3) as pool_c:
        nodes = [scheduler(p, registry, settings, clock) for p in (pool, pool_b, pool_c)]
        for minute in range(30):
            clock.set(at("2026-06-01T10:00:00.300000+00:00") + dt.timedelta(minutes=minute))
            await asyncio.gather(*(node.tick() for node in nodes))
    recorded = fires(db)
    assert len(recorded) == batch_count(db) == 5 * 30
    assert len({(r["name"], r["due_at"]) for r in recorded}) == 5 * 30


async def test_a_due_time_already_recorded_is_never_fired_again(pool, registry, settings, db) -> None:  # type: ignore[no-untyped-def]
    # The second guarantee: a scheduler that read a stale next_due_at (or a row rewound by hand)
    # meets the unique key on (schedule, due time) and starts nothing.
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    schedule_id = await add(pool, clock, "once", "* * * * *", overlap="queue")
    clock.set(at("2026-06-01T10:00:00.500000+00:00"))
    [first] = await firing_tick(pool, registry, settings, clock)
    assert first.outcome == "fired"
    with db.cursor() as cur:
        cur.execute("UPDATE schedules SET next_due_at = %s WHERE schedule_id = %s", (at("2026-06-01T10:00:00+00:00"),
                                                                                     schedule_id))  # fmt: skip
    [again] = await firing_tick(pool, registry, settings, clock)
    assert again.outcome == "duplicate" and again.batch_id is None
    assert batch_count(db) == 1
    # The audit trail names the schedule as the actor of the one batch it started (docs/AUDIT.md).
    with db.cursor() as cur:
        cur.execute("SELECT actor, actor_kind, target_ids FROM audit_log WHERE action = 'schedule.fire'"
                    " AND %s = ANY (target_ids)", (schedule_id,))  # fmt: skip
        assert cur.fetchall() == [("schedule once", "schedule", [schedule_id, first.batch_id])]


async def test_a_schedule_edited_while_due_fires_once_with_the_new_definition(pool, registry, settings, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    schedule_id = await add(pool, clock, "edited", "0 10 * * *")
    clock.set(at("2026-06-01T10:00:00.400000+00:00"))  # due, not yet fired
    await store.update_schedule(pool, schedule_id, {"collectors": ("ninja",), "priority": "high"}, clock(), BY_TEST)
    [result] = await firing_tick(pool, registry, settings, clock)
    assert result.outcome == "fired"
    with db.cursor() as cur:
        cur.execute("SELECT collector, priority FROM job_runs WHERE batch_id = %s", (result.batch_id,))
        assert cur.fetchall() == [("ninja", "high")]
    assert await firing_tick(pool, registry, settings, clock) == []
    assert batch_count(db) == 1


async def test_an_edit_in_progress_makes_the_scheduler_skip_then_fire_once(  # type: ignore[no-untyped-def]
    pool, registry, settings, db, database_url
) -> None:
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    schedule_id = await add(pool, clock, "locked", "0 10 * * *")
    clock.set(at("2026-06-01T10:00:00.400000+00:00"))
    editor = psycopg2.connect(database_url)
    try:
        with editor.cursor() as cur:  # what PATCH holds while it writes
            cur.execute("SELECT 1 FROM schedules WHERE schedule_id = %s FOR UPDATE", (schedule_id,))
            assert await asyncio.wait_for(firing_tick(pool, registry, settings, clock), 10) == []
        editor.commit()
    finally:
        editor.close()
    [result] = await firing_tick(pool, registry, settings, clock)
    assert result.outcome == "fired"
    assert batch_count(db) == 1


async def test_a_new_cron_while_due_counts_from_the_change(pool, registry, settings, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    schedule_id = await add(pool, clock, "recron", "0 10 * * *")
    clock.set(at("2026-06-01T10:00:00.400000+00:00"))
    await store.update_schedule(pool, schedule_id, {"cron": "30 10 * * *"}, clock(), BY_TEST)
    assert await firing_tick(pool, registry, settings, clock) == []
    clock.set(at("2026-06-01T10:30:00.400000+00:00"))
    [result] = await firing_tick(pool, registry, settings, clock)
    assert result.due_at == at("2026-06-01T10:30:00+00:00")


async def test_a_schedule_deleted_while_due_starts_nothing(pool, registry, settings, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    schedule_id = await add(pool, clock, "deleted", "0 10 * * *")
    clock.set(at("2026-06-01T10:00:00.400000+00:00"))
    await store.delete_schedule(pool, schedule_id, BY_TEST)
    assert await firing_tick(pool, registry, settings, clock) == []
    assert batch_count(db) == 0


async def test_a_paused_schedule_does_not_catch_up_when_resumed(pool, registry, settings, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    schedule_id = await add(pool, clock, "paused", "*/5 * * * *", catch_up="latest")
    await store.update_schedule(pool, schedule_id, {"enabled": False}, clock(), BY_TEST)
    clock.set(at("2026-06-01T10:31:00+00:00"))
    assert await firing_tick(pool, registry, settings, clock) == []
    await store.update_schedule(pool, schedule_id, {"enabled": True}, clock(), BY_TEST)
    assert await firing_tick(pool, registry, settings, clock) == []
    clock.set(at("2026-06-01T10:35:00.100000+00:00"))
    [result] = await firing_tick(pool, registry, settings, clock)
    assert (result.outcome, result.missed) == ("fired", 0)


async def test_an_unknown_collector_at_fire_time_is_skipped_and_said(pool, registry, settings, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    await add(pool, clock, "gone", "0 10 * * *", collectors=("slow",))
    clock.set(at("2026-06-01T10:00:00.400000+00:00"))
    without_slow = {k: v for k, v in registry.items() if k != "slow"}
    [result] = await firing_tick(pool, without_slow, settings, clock)
    assert result.outcome == "skipped_invalid" and "slow" in (result.detail or "")
    assert batch_count(db) == 0


async def test_fires_and_lag_are_measured(pool, registry, settings, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(at("2026-06-01T09:59:30+00:00"))
    await add(pool, clock, "measured", "0 10 * * *")
    fired_before = sample_value("collector_hub_schedule_fires_total", {"schedule": "measured", "outcome": "fired"})
    lag_count = sample_value("collector_hub_schedule_lag_seconds_count")
    lag_sum = sample_value("collector_hub_schedule_lag_seconds_sum")
    clock.set(at("2026-06-01T10:00:02.500000+00:00"))
    await firing_tick(pool, registry, settings, clock)
    assert sample_value("collector_hub_schedule_fires_total", {"schedule": "measured", "outcome": "fired"}) == (
        fired_before + 1
    )
    assert sample_value("collector_hub_schedule_lag_seconds_count") == lag_count + 1
    assert sample_value("collector_hub_schedule_lag_seconds_sum") == pytest.approx(lag_sum + 2.5)
