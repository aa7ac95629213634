"""Cron expressions and time zones: checks with messages a person can act on, and fire times.

``cronsim`` parses expressions and walks the calendar (it follows Debian cron, daylight-saving
quirks included); this module adds the ``@daily``-style shorthands, holds expressions to the
classic five fields, and turns its terse errors into ones that name the field and its value.

Daylight saving, as cronsim resolves it (and as docs/SCHEDULES.md promises):

* an expression with a fixed minute and hour (``30 2 * * *``) is read on the wall clock: on the
  day 02:30 does not exist it fires once, at the first minute after the jump (03:00); on the day
  01:30 happens twice it fires once, at the first 01:30;
* an expression whose minute or hour starts with ``*`` (``*/15 * * * *``, ``0 * * * *``) counts
  real time: every real quarter hour, hour, minute fires once, however the clock is relabelled.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Any

from cronsim import CronSim, CronSimError

from server.errors import ValidationError

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
MAX_CRON_CHARS = 200
MAX_TIMEZONE_CHARS = 100
# Counting missed due times stops here (a long outage of an every-minute schedule).
MAX_COUNTED = 10_000
UTC = dt.UTC


def expand(expression: str) -> str:
    """The five-field form of a stored expression (shorthands expanded)."""
    return SHORTHANDS.get(expression.lower(), expression)


def check_cron(value: Any) -> str:
    """A valid expression, whitespace-normalised, as it will be stored. Raises a
    ValidationError naming the bad field."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("cron must be a non-empty string such as '0 2 * * *' or '@daily'")
    if len(value) > MAX_CRON_CHARS:
        raise ValidationError(f"cron must be at most {MAX_CRON_CHARS} characters, got {len(value)}")
    expression = " ".join(value.split())
    if expression.startswith("@"):
        if expression.lower() not in SHORTHANDS:
            raise ValidationError(f"cron shorthand {expression[:40]!r} is unknown; known: {', '.join(SHORTHANDS)}")
        return expression.lower()
    fields = expression.split(" ")
    if len(fields) != len(FIELDS):
        raise ValidationError(
            f"cron must have five fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    if not expression.isascii() or not expression.isprintable():
        raise ValidationError("cron must be printable ASCII")
    start = dt.datetime(2000, 1, 1, tzinfo=UTC)
    try:
        iterator = CronSim(expression, start)
    except CronSimError as exc:
        raise ValidationError(_field_message(expression, str(exc))) from None
    try:
        next(iterator)
    except StopIteration:
        raise ValidationError(f"cron {expression!r} never fires (no matching date in 50 years)") from None
    return expression


def _field_message(expression: str, cronsim_message: str) -> str:
    """cronsim says ``Bad day-of-week``; say which value that was and what the field takes."""
    ranges = {
        "minute": "0-59",
        "hour": "0-23",
        "day-of-month": "1-31, on a day the months given have",
        "month": "1-12 or JAN-DEC",
        "day-of-week": "0-7 or SUN-SAT",
    }
    for index, name in enumerate(FIELDS):
        if cronsim_message.lower() == f"bad {name}":
            value = expression.split(" ")[index]
            return f"cron field {index + 1} ({name}) is invalid: {value[:40]!r}; it takes {ranges[name]}"
    return f"cron {expression!r} is invalid: {cronsim_message}"


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(value: Any) -> str:
    """An IANA time zone name known to this machine's time zone database."""
    if not isinstance(value, str) or not value:
        raise ValidationError("timezone must be an IANA time zone name such as 'Europe/Paris' or 'UTC'")
    if len(value) > MAX_TIMEZONE_CHARS or value not in _known_zones():
        raise ValidationError(
            f"Unknown time zone {value[:MAX_TIMEZONE_CHARS]!r}: expected an IANA name such as "
            "'America/New_York', 'Europe/Paris' or 'UTC'"
        )
    return value


@functools.lru_cache(maxsize=256)
def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def fire_times(expression: str, timezone: str, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` due times strictly after ``after``, in UTC."""
    found: list[dt.datetime] = []
    threshold = after.astimezone(UTC)
    for local in CronSim(expand(expression), after.astimezone(zone(timezone))):
        instant = local.astimezone(UTC)
        # On a wall-clock expression, a start inside the repeated hour can yield the first
        # pass of a time that is already behind us: never go back.
        if instant > threshold:
            found.append(instant)
            if len(found) == count:
                break
    return found


def next_fire_time(expression: str, timezone: str, after: dt.datetime) -> dt.datetime:
    found = fire_times(expression, timezone, after, 1)
    if not found:  # check_cron refuses expressions that never fire; a stored one is checked
        raise ValueError(f"cron {expression!r} has no fire time after {after.isoformat()}")
    return found[0]


def due_between(
    expression: str, timezone: str, first: dt.datetime, now: dt.datetime
) -> tuple[int, dt.datetime | None, bool]:
    """Due times from ``first`` (included) to ``now`` (included): how many (counting stops at
    ``MAX_COUNTED``; the flag says it did) and the latest of them."""
    start = first.astimezone(UTC) - dt.timedelta(seconds=1)
    end = now.astimezone(UTC)
    count = 0
    latest: dt.datetime | None = None
    for local in CronSim(expand(expression), start.astimezone(zone(timezone))):
        instant = local.astimezone(UTC)
        if instant <= start:
            continue
        if instant > end:
            return count, latest, False
        count += 1
        latest = instant
        if count == MAX_COUNTED:
            break
    else:
        return count, latest, False
    # Too many to walk: find the latest one by walking back from now.
    walk_back_from = end.replace(microsecond=999_999)  # cronsim drops the fraction: `end` itself counts
    for local in CronSim(expand(expression), walk_back_from.astimezone(zone(timezone)), reverse=True):
        instant = local.astimezone(UTC)
        if instant <= end:
            return count, max(instant, latest) if latest else instant, True
    return count, latest, True
