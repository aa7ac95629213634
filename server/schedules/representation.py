"""The JSON shape of a schedule, built from a ``store`` row (with its last batch and fire)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from server.api.timestamps import format_timestamp
from server.schedules.cron import fire_times

NEXT_FIRE_TIMES = 5


def schedule_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /api/schedules/{id}``. ``next_fire_times`` starts at the pending due time (which
    may be a moment in the past while a scheduler is about to fire it); empty while paused."""
    upcoming: list[dt.datetime] = []
    if row["enabled"]:
        pending = row["next_due_at"] - dt.timedelta(microseconds=1)
        upcoming = fire_times(row["cron"], row["timezone"], pending, NEXT_FIRE_TIMES)
    last_batch = None
    if row["last_batch_id"] is not None:
        last_batch = {
            "batch_id": row["last_batch_id"],
            "status": row["last_batch_status"],
            "due_at": format_timestamp(row["last_batch_due_at"]),
            "started_at": format_timestamp(row["last_batch_started_at"]),
            "ended_at": format_timestamp(row["last_batch_ended_at"]),
        }
    last_fire = None
    if row["last_fire_due_at"] is not None:
        last_fire = {
            "due_at": format_timestamp(row["last_fire_due_at"]),
            "outcome": row["last_fire_outcome"],
            "batch_id": row["last_fire_batch_id"],
            "detail": row["last_fire_detail"],
            "recorded_at": format_timestamp(row["last_fire_recorded_at"]),
        }
    return {
        "schedule_id": row["schedule_id"],
        "name": row["name"],
        "collectors": list(row["collectors"]),
        "priority": row["priority"],
        "cron": row["cron"],
        "timezone": row["timezone"],
        "enabled": row["enabled"],
        "overlap": row["overlap"],
        "catch_up": row["catch_up"],
        "source": row["source"],
        "next_fire_times": [format_timestamp(t) for t in upcoming],
        "last_batch": last_batch,
        "last_fire": last_fire,
        "created_at": format_timestamp(row["created_at"]),
        "updated_at": format_timestamp(row["updated_at"]),
    }
