"""The background-loop primitive: poll on an interval, wake at once on a NOTIFY, run the work
each poll starts, and stop within a grace period.

The runner (claims jobs), the webhook dispatcher (claims deliveries) and the schedules (claim
due times) all have that shape::

    loop = BackgroundLoop("webhook dispatcher", tick, interval=settings.webhook_poll_interval)
    loop.start()
    loop.wake()                      # e.g. the hub saw a NOTIFY: look now, not at the next poll
    await loop.spawn(deliver(claim)) # from tick: work that outlives it; ending it wakes the loop
    await loop.stop(grace)           # no more ticks; the current one gets ``grace``, then is cancelled
    await loop.drain(grace)          # spawned work gets ``grace``, then is cancelled

``tick`` is an async callable returning True when there may be more to do right now (it filled
every free slot), which runs it again without waiting. A tick that raises is logged (once per
run of failures, quietly for a database outage) and retried at the next poll: the loop never
dies of an error.

The spawned work is an ``aiojobs.Scheduler``: its ``wait_and_close(timeout)`` is exactly "give
the work the grace period, then cancel what is left", and it reports work that crashed.
The loop itself is one task rather than an aiojobs job: stopping it must wait for the current
tick (cancelling a claim mid-commit could strand what it claimed) before the work is drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiojobs

from server.db import database

log = logging.getLogger(__name__)

# How long cancelled work gets to unwind (kill a process, close a response) before aiojobs
# reports it as stuck and lets go of it.
CANCEL_WAIT_SECONDS = 5.0


class BackgroundLoop:
    """One periodic task and the work it spawns; see the module docstring."""

    def __init__(
        self,
        name: str,
        tick: Callable[[], Awaitable[bool]],
        *,
        interval: float,
        quiet_errors: tuple[type[BaseException], ...] = database.OUTAGE_ERRORS,
    ) -> None:
        self.name = name
        self._tick = tick
        self._interval = interval
        self._quiet_errors = quiet_errors
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._work = aiojobs.Scheduler(
            limit=None, close_timeout=CANCEL_WAIT_SECONDS, exception_handler=self._work_failed
        )
        self._unfinished = 0  # counted here, not len(self._work): aiojobs forgets a job a step after it ends
        self._cancelled = 0

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called: a tick should start nothing new."""
        return self._stopping

    @property
    def in_flight(self) -> int:
        """Spawned work not finished yet."""
        return self._unfinished

    def start(self) -> None:
        """Start ticking: once now (in its start-up turn, see ``startup_turn``), then on every
        wake-up or interval."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Tick now instead of at the next interval (once, however often it is called)."""
        self._wake.set()

    async def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` beside the loop until it ends or ``drain`` cancels it. Its end wakes
        the loop (a slot is free); an exception it raises is logged."""
        wrapped = self._then_wake(work)
        self._unfinished += 1
        try:
            await self._work.spawn(wrapped, name=name)
        except BaseException:  # closed (spawned after drain): never started, so never awaited
            self._unfinished -= 1
            wrapped.close()
            work.close()
            raise

    async def stop(self, grace: float) -> None:
        """Tick no more. A tick in progress gets ``grace`` seconds to finish, then is cancelled."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            log.warning("%s: the last poll took over %gs; cancelled", self.name, grace)
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for the spawned work, then cancel what is left. Returns
        how much was cancelled. Call after ``stop`` (nothing can be spawned afterwards)."""
        await self._work.wait_and_close(grace)
        return self._cancelled

    async def _run(self) -> None:
        failing = False
        first = True
        while not self._stopping:
            self._wake.clear()  # a wake-up during the tick ticks again at once
            more = False
            try:
                async with startup_turn() if first else contextlib.nullcontext():
                    if first and self._stopping:  # stopped while another loop took its first tick
                        break
                    first = False
                    more = await self._tick()
                if failing:
                    log.info("%s: polling works again", self.name)
                failing = False
            except Exception as exc:  # e.g. the database is restarting: keep going
                if not failing:  # the story once, not once per poll
                    if isinstance(exc, self._quiet_errors):
                        log.warning("%s: poll failed (%s); retrying until it works", self.name, describe(exc))
                    else:
                        log.exception("%s: poll failed; retrying until it works", self.name)
                elif not isinstance(exc, self._quiet_errors):
                    log.warning("%s: poll failed again: %s", self.name, describe(exc))
                failing = True
            if more and not self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    async def _then_wake(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            self._cancelled += 1
            raise
        finally:
            self._unfinished -= 1
            self._wake.set()

    def _work_failed(self, scheduler: aiojobs.Scheduler, context: dict[str, Any]) -> None:
        log.error("%s: %s", self.name, context["message"], exc_info=context.get("exception"))


# The first tick of each loop, and the statements a process runs as it starts while a loop may be
# ticking, one at a time (per event loop). A server process starts up to five loops at once
# (runner, housekeeping, webhook dispatcher, health, schedules), each with a statement to run at
# once, and writes the webhook receivers and schedules its settings declare after the first loop
# has started: at the same time, each made the pool open one more connection, where one after
# another they share the pool's first (each connection is a PostgreSQL process to start, and its
# caches to fill: 28-34 ms of PostgreSQL's CPU per app started instead of 38-48 when each loop
# had one). So a started app holds the pool's first connection and the LISTEN one
# (tests/test_start_connections.py; with the declared writes taking no turn, `serve` held three
# when ready, seen in pg_stat_activity). The later ticks are not ordered: each loop keeps its own
# interval (docs/DEPLOYMENT.md, Requirements, says what that costs an idle process). The runner's
# loop starts first (server/app.py, PARTS): its first claim waits only for the declared receivers'
# write, which takes the first turn.
_STARTUP_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def startup_turn() -> asyncio.Lock:
    """The lock that the first tick of each of this event loop's BackgroundLoops, and a start-up
    statement run while they may be ticking, take in turn (FIFO), so that a process starts on
    one pool connection. Taken and let go at once, it waits for the turns taken before it."""
    loop = asyncio.get_running_loop()
    lock = _STARTUP_TURNS.get(loop)
    if lock is None:
        lock = _STARTUP_TURNS[loop] = asyncio.Lock()
    return lock


def describe(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__
