"""The health evaluator: on every node, after each job that ends and every
``COLLECTOR_HUB_HEALTH_INTERVAL`` seconds (staleness comes with time alone), it compares each
configured collector's state with its facts and moves the ones that changed (store.py: once
across every node, with its alerts in the same transaction)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import aiopg

from collectors.registry import CollectorSpec
from server.background import BackgroundLoop
from server.health import store
from server.health.representation import event_data
from server.health.rules import EVENT_OF_STATE, Policy, state_of

log = logging.getLogger(__name__)


class HealthEvaluator:
    def __init__(
        self,
        pool: aiopg.Pool,
        registry: Mapping[str, CollectorSpec],
        interval: float,
        on_alert: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._policies = {name: Policy.of(spec) for name, spec in registry.items()}
        self._on_alert = on_alert  # wakes the webhook dispatcher: a delivery is due
        self._loop = BackgroundLoop("health", self._tick, interval=interval)
        self._seen = False

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    async def stop(self) -> None:
        await self._loop.stop(5.0)

    async def _tick(self) -> bool:
        if not self._seen:
            await store.ensure_rows(self._pool, list(self._policies))
            self._seen = True
        now, facts = await store.read_facts(self._pool, list(self._policies))
        for collector, row in facts.items():
            policy = self._policies[collector]
            if state_of(row, policy, now) != row["state"]:
                await self._change(collector, policy)
        return False

    async def _change(self, collector: str, policy: Policy) -> None:
        changed = await store.change_state(
            self._pool,
            collector,
            lambda row, now: state_of(row, policy, now),
            lambda moved, previous, now: event_data(moved, previous, policy, now),
            EVENT_OF_STATE.__getitem__,
        )
        if changed is None:
            return  # another node moved it first, or the facts moved on
        old, new, deliveries = changed
        log.warning("collector %s: %s -> %s (%d webhook delivery(ies))", collector, old, new, deliveries)
        if deliveries:
            self._on_alert()
