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


async def test_first_ticks_of_loops_started_together_run_one_at_a_time_and_later_ones_overlap() -> None:
    """A process starting its loops takes their first ticks one after another (so they share
    one database connection); the ticks after those are not held back."""
    running = 0
    most = 0
    first_done = asyncio.Event()
    release = asyncio.Event()
    ticks: dict[str, int] = {}

    def make(name: str):  # type: ignore[no-untyped-def]
        async def tick() -> bool:
            nonlocal running, most
            ticks[name] = ticks.get(name, 0) + 1
            running += 1
            most = max(most, running)
            try:
                if ticks[name] == 1:
                    await asyncio.sleep(0)  # a real tick awaits its statement
                    await asyncio.sleep(0)
                else:
                    first_done.set()
                    await release.wait()  # every second tick waits here, all at once
            finally:
                running -= 1
            return False

        return tick

    loops = [BackgroundLoop(f"loop{i}", make(f"loop{i}"), interval=HOUR) for i in range(5)]
    for loop in loops:
        loop.start()
    await eventually(lambda: _true(len(ticks) == 5), what="every loop's first tick")
    assert most == 1, f"{most} first ticks ran at once"
    for loop in loops:
        loop.wake()
    await eventually(lambda: _true(running == 5), what="the second ticks, all at once")
    release.set()
    for loop in loops:
        await loop.stop(1.0)


async def test_a_loop_stopped_while_waiting_for_its_first_tick_never_ticks() -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    ticked: list[str] = []

    async def slow() -> bool:
        ticked.append("slow")
        started.set()
        await release.wait()
        return False

    async def other() -> bool:
        ticked.append("other")
        return False

    first = BackgroundLoop("slow", slow, interval=HOUR)
    first.start()
    await started.wait()
    second = BackgroundLoop("other", other, interval=HOUR)
    second.start()
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(second.stop(5.0))
    release.set()
    await stopping
    await first.stop(1.0)
    assert ticked == ["slow"]
