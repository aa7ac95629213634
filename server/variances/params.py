"""What the variance routes read from a request: dates, flags, types, statuses, who is calling."""

from __future__ import annotations

import datetime as dt
import re

from aiohttp import web

from collectors.variance_settings import VARIANCE_STATUSES, VARIANCE_TYPES
from server.errors import ValidationError
from server.security.credentials import OPEN
from server.security.keys import PRINCIPAL

DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DATE_ERROR = "Invalid date format. Use YYYY-MM-DD"
BOOLEANS = {"true": True, "false": False}
MAX_TEXT = 1000
MAX_HOSTNAME = 255


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def parse_date(raw: str, name: str = "date") -> dt.date:
    if not DATE.fullmatch(raw):
        raise ValidationError(f"{name}: {DATE_ERROR}")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{name}: {raw!r} is not a calendar date") from None


def path_date(request: web.Request) -> dt.date:
    return parse_date(request.match_info["date"])


def query_bool(request: web.Request, name: str, default: bool | None = False) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = BOOLEANS.get(raw)
    if value is None:
        raise ValidationError(f"{name} must be true or false, got {raw[:20]!r}")
    return value


def check_type(raw: str, name: str = "type") -> str:
    if raw not in VARIANCE_TYPES:
        raise ValidationError(f"{name} must be one of {', '.join(VARIANCE_TYPES)}, got {raw[:40]!r}")
    return raw


def query_types(request: web.Request, *names: str) -> tuple[str, ...]:
    """Variance types, comma-separated, from the first of ``names`` that is given."""
    for name in names:
        raw = request.query.get(name)
        if raw is not None:
            return tuple(check_type(part.strip(), name) for part in raw.split(",") if part.strip())
    return ()


def query_statuses(request: web.Request) -> tuple[str, ...]:
    raw = request.query.get("status")
    if raw is None:
        return ()
    statuses = tuple(part.strip() for part in raw.split(",") if part.strip())
    bad = [s for s in statuses if s not in VARIANCE_STATUSES]
    if bad or not statuses:
        raise ValidationError(f"status must list values of {', '.join(VARIANCE_STATUSES)}")
    return statuses


def caller(request: web.Request) -> str:
    """Who is calling, as the history records it: the actor of the audit trail (the key's name
    or id, the token's subject, or "open mode")."""
    return (request.get(PRINCIPAL) or OPEN).actor


def path_id(request: web.Request) -> int:
    raw = request.match_info["exception_id"]
    if not re.fullmatch(r"[0-9]{1,15}", raw):
        raise ValidationError(f"exception id must be a positive integer, got {raw[:30]!r}")
    return int(raw)
