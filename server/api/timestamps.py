"""The contract's one timestamp format (docs/COLLECTOR_RUN_TRACKING_API.md), for every
feature's representation."""

from __future__ import annotations

import datetime as dt


def format_timestamp(value: dt.datetime | None) -> str | None:
    """UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: the contract's one timestamp format."""
    if value is None:
        return None
    # isoformat, not strftime: the same text for less (every pushed state formats several); in
    # UTC its offset is always the six characters "+00:00".
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def utc_now() -> str:
    return format_timestamp(dt.datetime.now(dt.UTC)) or ""
