"""Each configured collector's health now, from its facts and policy: what
``GET /api/collectors/health`` and the metrics show (the evaluator moves the recorded state,
and alerts, when it differs)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import aiopg

from collectors.registry import CollectorSpec
from server.health import store
from server.health.rules import Policy, state_of


@dataclasses.dataclass(frozen=True)
class CurrentHealth:
    collector: str
    facts: Mapping[str, Any]  # its collector_health row; empty before the hub first saw it
    policy: Policy
    state: str
    now: dt.datetime


async def current_states(pool: aiopg.Pool, registry: Mapping[str, CollectorSpec]) -> list[CurrentHealth]:
    names = sorted(registry)
    now, facts = await store.read_facts(pool, names)
    found = []
    for name in names:
        policy = Policy.of(registry[name])
        row = facts.get(name)
        state = state_of(row, policy, now) if row is not None else "healthy"
        found.append(CurrentHealth(name, row or {}, policy, state, now))
    return found
