"""The scheduler: one per server process, on every node, firing due schedules.

Every ``schedule_poll_interval`` it asks PostgreSQL for due schedules and deals with each in its
own transaction (``store.fire_next_due``); several nodes polling the same database fire each
due time once between them. The clock is injected, so tests step through a day of due times
without waiting for any of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping

import aiopg

from collectors.registry import CollectorSpec
from server.background import BackgroundLoop
from server.observability.metrics import SCHEDULE_FIRES, SCHEDULE_LAG
from server.schedules import store
from server.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
# Due schedules dealt with per poll; the rest wait for the next one (a second later).
MAX_PER_TICK = 100
STOP_WITHIN = 10.0


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Scheduler:
    def __init__(
        self,
        pool: aiopg.Pool,
        registry: Mapping[str, CollectorSpec],
        settings: Settings,
        clock: Clock = system_clock,
    ) -> None:
        self._pool = pool
        self._registry = dict(registry)
        self._settings = settings
        self.clock = clock
        self._loop = BackgroundLoop("scheduler", self._poll, interval=settings.schedule_poll_interval)

    async def tick(self) -> list[store.FireResult]:
        """Deal with every schedule due at the clock's ``now``; return what each claim did."""
        now = self.clock()
        results = []
        for _ in range(MAX_PER_TICK):
            result = await store.fire_next_due(
                self._pool, self._registry, now, self._settings.schedule_misfire_grace, self._settings.runner_id
            )
            if result is None:
                break
            self._report(result, now)
            results.append(result)
        return results

    def _report(self, result: store.FireResult, now: dt.datetime) -> None:
        if result.missed:
            more = " or more" if result.missed_more else ""
            log.warning(
                "schedule %s: %d%s due time(s) missed (servers down or paused past the %g s grace); catch-up policy %s",
                result.name,
                result.missed,
                more,
                self._settings.schedule_misfire_grace,
                "fired the latest" if result.due_at is not None else "none: skipped",
            )
            SCHEDULE_FIRES.labels(schedule=result.name, outcome="skipped_missed").inc(result.missed)
        if result.outcome is None or result.due_at is None:
            return
        if result.outcome == "duplicate":
            log.warning("schedule %s: due time %s was already recorded; not fired again", result.name, result.due_at)
            return
        SCHEDULE_FIRES.labels(schedule=result.name, outcome=result.outcome).inc()
        if result.outcome == "fired":
            lag = (now - result.due_at).total_seconds()
            SCHEDULE_LAG.observe(max(lag, 0.0))
            log.info("schedule %s: due %s, started batch %s (%.3f s late)", result.name, result.due_at, result.batch_id,
                     lag)  # fmt: skip
        else:
            log.warning("schedule %s: due %s, %s: %s", result.name, result.due_at, result.outcome, result.detail)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Finish the transaction in progress (if any), then stop."""
        await self._loop.stop(STOP_WITHIN)

    async def _poll(self) -> bool:
        return len(await self.tick()) == MAX_PER_TICK  # more may be due right now
