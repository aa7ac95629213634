"""What a receiver may be: checks for the registration fields, shared by the API and the
settings-declared webhooks. Failures are ValidationErrors naming the field."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from yarl import URL

from server.errors import ValidationError
from server.webhooks.rules.public_addresses import url_problem

EVENTS = (
    "batch.completed",
    "batch.failed",
    "batch.cancelled",
    "job.failed",  # after the job's last attempt
    "collector.failing",  # collector health (server/health/): on a change of state only
    "collector.stale",
    "collector.recovered",
    "variance.opened",  # the cross-vendor checks (docs/VARIANCES.md): a complete run only
    "variance.resolved",
)
# What a receiver created without ``events`` hears: what receivers heard before there was a choice.
DEFAULT_EVENTS = ("batch.completed",)
MAX_COLLECTORS = 100
MAX_URL_CHARS = 2048
MAX_DESCRIPTION_CHARS = 500
WEBHOOK_ID = re.compile(r"^wh_[0-9a-f]{16}$")
DELIVERY_ID = re.compile(r"^msg_[0-9a-f]{32}$")


def check_url(value: Any, *, allow_private: bool) -> str:
    """A receiver URL, normalised by yarl (the string stored is the one requested later)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("url must be a non-empty string")
    if len(value) > MAX_URL_CHARS:
        raise ValidationError(f"url must be at most {MAX_URL_CHARS} characters, got {len(value)}")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValidationError("url must not contain whitespace or control characters")
    try:
        url = URL(value)
        url.port  # noqa: B018 - raises on a bad port
    except (ValueError, TypeError):
        raise ValidationError("url is not a valid URL") from None
    problem = url_problem(url, allow_private=allow_private)
    if problem:
        raise ValidationError(problem)
    normalised = str(url)
    if len(normalised) > MAX_URL_CHARS:
        raise ValidationError(f"url must be at most {MAX_URL_CHARS} characters once encoded")
    return normalised


def check_events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValidationError(f"events must be a non-empty list of: {', '.join(EVENTS)}")
    if not all(isinstance(v, str) for v in value):
        raise ValidationError("events must be a list of strings")
    unknown = [v for v in value if v not in EVENTS]
    if unknown:
        shown = ", ".join(repr(v[:64]) for v in unknown[:5])
        raise ValidationError(f"Unknown event(s): {shown}. Events: {', '.join(EVENTS)}")
    if len(set(value)) != len(value):
        raise ValidationError("events lists an event more than once")
    return [e for e in EVENTS if e in value]  # canonical order


def check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false")
    return value


def check_collectors(value: Any, known: Collection[str]) -> list[str] | None:
    """The collectors a receiver hears about (null: all), each one this server has."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_COLLECTORS:
        raise ValidationError(
            f"collectors must be null or a non-empty list of at most {MAX_COLLECTORS} collector names"
        )
    if not all(isinstance(v, str) for v in value):
        raise ValidationError("collectors must be a list of strings")
    unknown = [v for v in value if v not in known]
    if unknown:
        shown = ", ".join(repr(v[:64]) for v in unknown[:5])
        raise ValidationError(f"Unknown collector(s): {shown}. Collectors: {', '.join(sorted(known))}")
    if len(set(value)) != len(value):
        raise ValidationError("collectors lists a collector more than once")
    return sorted(value)


def check_description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("description must be a string or null")
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise ValidationError(f"description must be at most {MAX_DESCRIPTION_CHARS} characters, got {len(value)}")
    if "\x00" in value:
        raise ValidationError("description must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("description must be valid Unicode text (no lone surrogates)") from None
    return value


def check_webhook_id(value: str) -> str:
    if not WEBHOOK_ID.match(value):
        raise ValidationError("Malformed webhook id: expected 'wh_' followed by 16 hex digits")
    return value


def check_delivery_id(value: str) -> str:
    if not DELIVERY_ID.match(value):
        raise ValidationError("Malformed delivery id: expected 'msg_' followed by 32 hex digits")
    return value
