"""server.background.BackgroundLoop: the wake/poll/stop primitive of the runner, the webhook
dispatcher and the schedules."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.background import BackgroundLoop
from server.db.database import DatabaseUnavailable
from tests.support.conditions import eventually

HOUR = 3600.0  # an interval that never elapses within a test: only wake() can tick


async def test_wake_ticks_at_once_and_the_interval_ticks_without_it() -> None:
    ticks = 0

    async def tick() -> bool:
        nonlocal ticks
        ticks += 1
        return False

    loop = BackgroundLoop("woken", tick, interval=HOUR)
    loop.start()
    await eventually(lambda: _true(ticks == 1), what="the first tick at start")
    loop.wake()
    await eventually(lambda: _true(ticks == 2), what="a tick on wake()")
    await loop.stop(1.0)

    polled = 0

    async def poll() -> bool:
        nonlocal polled
        polled += 1
        return False

    loop = BackgroundLoop("polling", poll, interval=0.01)
    loop.start()
    await eventually(lambda: _true(polled >= 3), what="ticks on the interval alone")
    await loop.stop(1.0)


async def test_a_tick_that_filled_every_slot_runs_again_without_waiting() -> None:
    left = 3

    async def tick() -> bool:
        nonlocal left
        left -= 1
        return left > 0

    loop = BackgroundLoop("more", tick, interval=HOUR)
    loop.start()
    await eventually(lambda: _true(left == 0), what="three ticks from one start")
    await loop.stop(1.0)


async def test_ended_work_wakes_the_loop_and_frees_its_slot() -> None:
    release = asyncio.Event()
    seen: list[int] = []
    loop: BackgroundLoop

    async def work() -> None:
        await release.wait()

    async def tick() -> bool:
        seen.append(loop.in_flight)
        if not seen[1:]:
            await loop.spawn(work(), name="work")
        return False

    loop = BackgroundLoop("work", tick, interval=HOUR)
    loop.start()
    await eventually(lambda: _true(loop.in_flight == 1), what="the work spawned")
    release.set()
    await eventually(lambda: _true(seen == [0, 0]), what="a tick after the work ended, with its slot free")
    await loop.stop(1.0)
    assert await loop.drain(1.0) == 0


async def test_stop_cancels_a_slow_tick_after_the_grace_and_drain_cancels_slow_work() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        await asyncio.Event().wait()

    async def tick() -> bool:
        await loop.spawn(forever(), name="stuck")
        started.set()
        await asyncio.Event().wait()
        return False

    loop = BackgroundLoop("slow", tick, interval=HOUR)
    loop.start()
    await started.wait()
    await asyncio.wait_for(loop.stop(0.05), 5)
    assert loop.stopping and loop.in_flight == 1
    assert await asyncio.wait_for(loop.drain(0.05), 5) == 1
    assert loop.in_flight == 0
    with pytest.raises(RuntimeError):
        await loop.spawn(forever(), name="too late")


async def test_a_failing_tick_is_logged_once_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="server.background")
    calls = 0

    async def tick() -> bool:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise DatabaseUnavailable("connection refused")
        return False

    loop = BackgroundLoop("flaky", tick, interval=0.01)
    loop.start()
    await eventually(lambda: _true(calls >= 4), what="ticks after the failures")
    await loop.stop(1.0)
    messages = [r.getMessage() for r in caplog.records if r.name == "server.background"]
    assert messages == [
        "flaky: poll failed (connection refused); retrying until it works",
        "flaky: polling works again",
    ]


async def _true(value: bool) -> bool:
    return value
