"""Collector health as JSON: one entry of ``GET /api/collectors/health``, and the data of a
``collector.*`` webhook event (the same entry, with the state it left)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from server.api.timestamps import format_timestamp
from server.health.rules import Policy

Row = Mapping[str, Any]


def health_json(collector: str, facts: Row, policy: Policy, state: str, now: dt.datetime) -> dict[str, Any]:
    """``facts`` is the collector's ``collector_health`` row (empty before the hub first saw it)."""
    last_success = facts.get("last_success_at")
    recorded = facts.get("state") == state
    return {
        "collector": collector,
        "state": state,
        "state_since": format_timestamp(facts["state_since"]) if recorded else None,
        "last_success_at": format_timestamp(last_success),
        "last_success_age_seconds": None if last_success is None else max(0, int((now - last_success).total_seconds())),
        "last_failure_at": format_timestamp(facts.get("last_failure_at")),
        "last_error": facts.get("last_error"),
        "last_job_id": facts.get("last_job_id"),
        "consecutive_failures": facts.get("consecutive_failures", 0),
        "alert_after_failures": policy.alert_after_failures,
        "stale_after_seconds": None if policy.stale_after is None else int(policy.stale_after),
    }


def event_data(moved: Row, previous_state: str, policy: Policy, now: dt.datetime) -> dict[str, Any]:
    """What a ``collector.*`` event says besides its type, id and time (stored with the delivery)."""
    return {
        **health_json(moved["collector"], moved, policy, moved["state"], now),
        "previous_state": previous_state,
    }
