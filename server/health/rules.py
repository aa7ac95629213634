"""What a collector's health is, from the facts its jobs left (sql/011_health_and_audit.sql
keeps them) and its policy in the collectors file (``stale_after``, ``alert_after_failures``).

``failing``: at least ``alert_after_failures`` failed runs in a row (a cancelled run neither
counts nor resets). ``stale``: no success within ``stale_after`` (counted from when the hub
first saw the collector, if it never succeeded). ``failing`` wins over ``stale``: a collector
that runs and fails is failing, whatever the time since its last success. Otherwise
``healthy``. Each state an alert can be sent for has its webhook event; a return to healthy is
``collector.recovered``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from collectors.registry import CollectorSpec

HEALTH_STATES = ("healthy", "failing", "stale")
EVENT_OF_STATE = {"failing": "collector.failing", "stale": "collector.stale", "healthy": "collector.recovered"}


@dataclasses.dataclass(frozen=True)
class Policy:
    stale_after: float | None  # seconds; None: never stale
    alert_after_failures: int

    @classmethod
    def of(cls, spec: CollectorSpec) -> Policy:
        return cls(spec.stale_after, spec.alert_after_failures)


def stale_since(facts: Mapping[str, Any]) -> dt.datetime:
    """Where staleness is counted from: the last success, else when the collector was first seen."""
    last_success: dt.datetime | None = facts["last_success_at"]
    first_seen: dt.datetime = facts["first_seen_at"]
    return last_success if last_success is not None else first_seen


def state_of(facts: Mapping[str, Any], policy: Policy, now: dt.datetime) -> str:
    if facts["consecutive_failures"] >= policy.alert_after_failures:
        return "failing"
    if policy.stale_after is not None and (now - stale_since(facts)).total_seconds() > policy.stale_after:
        return "stale"
    return "healthy"
