"""``Retry-After`` (RFC 9110 section 10.2.3), parsed once for every HTTP client of the project:
the CLI's polling and streams, the webhook dispatcher, and the vendor collectors."""

from __future__ import annotations

import datetime as dt
import email.utils
import time


def parse_retry_after(raw: str | None, *, cap: float, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date, at most
    ``cap``; ``None`` when the header is absent or unreadable (the caller picks its default)."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return min(float(raw), cap)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), cap)
