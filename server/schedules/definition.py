"""What a schedule is, and the checks on every field of one (shared by the API and the
collectors file). Each failure is a ValidationError that names the field."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from collectors.contract import DEFAULT_PRIORITY, PRIORITIES, SCHEDULE_CATCH_UP_POLICIES, SCHEDULE_OVERLAP_POLICIES
from server.api.validation import check_collector_names, reject_unknown_fields
from server.errors import ValidationError
from server.schedules.cron import check_cron, check_timezone

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SCHEDULE_ID = re.compile(r"^sch_[0-9a-f]{16}$")
OVERLAP_POLICIES = SCHEDULE_OVERLAP_POLICIES
CATCH_UP_POLICIES = SCHEDULE_CATCH_UP_POLICIES
MAX_COLLECTORS = 50
FIELDS = ("name", "collectors", "cron", "timezone", "priority", "enabled", "overlap", "catch_up")
REQUIRED = ("name", "collectors", "cron")
# Fields whose change moves the next due time (it is computed afresh from the moment of the change).
TIMING_FIELDS = frozenset({"cron", "timezone"})


@dataclasses.dataclass(frozen=True)
class ScheduleDefinition:
    name: str
    collectors: tuple[str, ...]
    cron: str
    timezone: str = "UTC"
    priority: str = DEFAULT_PRIORITY
    enabled: bool = True
    overlap: str = SCHEDULE_OVERLAP_POLICIES[0]
    catch_up: str = SCHEDULE_CATCH_UP_POLICIES[0]


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ValidationError(
            "name must be 1-64 characters: lower-case letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return value


def check_collectors(value: Any, registry: Mapping[str, object]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValidationError("collectors must be a non-empty list of collector names")
    if len(value) > MAX_COLLECTORS:
        raise ValidationError(f"collectors must list at most {MAX_COLLECTORS} collectors, got {len(value)}")
    return tuple(check_collector_names(value, registry))


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValidationError(f"{field} must be one of {', '.join(allowed)}")
    return str(value)


def check_field(field: str, value: Any, registry: Mapping[str, object]) -> Any:
    """One field's value, checked (and normalised: cron whitespace, shorthand case)."""
    if field == "name":
        return check_name(value)
    if field == "collectors":
        return check_collectors(value, registry)
    if field == "cron":
        return check_cron(value)
    if field == "timezone":
        return check_timezone(value)
    if field == "priority":
        return _choice("priority", value, PRIORITIES)
    if field == "overlap":
        return _choice("overlap", value, OVERLAP_POLICIES)
    if field == "catch_up":
        return _choice("catch_up", value, CATCH_UP_POLICIES)
    if field == "enabled":
        if not isinstance(value, bool):
            raise ValidationError("enabled must be true or false")
        return value
    raise ValidationError(f"Unknown field {field!r}")


def definition_from(body: Mapping[str, Any], registry: Mapping[str, object]) -> ScheduleDefinition:
    """A new schedule from a request body (or a collectors-file table)."""
    reject_unknown_fields(body, FIELDS)
    missing = [f for f in REQUIRED if f not in body]
    if missing:
        raise ValidationError(f"Missing field(s): {', '.join(missing)} (required: {', '.join(REQUIRED)})")
    values = {field: check_field(field, body[field], registry) for field in FIELDS if field in body}
    return ScheduleDefinition(**values)


def changes_from(body: Mapping[str, Any], registry: Mapping[str, object]) -> dict[str, Any]:
    """The fields a PATCH changes, checked."""
    reject_unknown_fields(body, FIELDS)
    if not body:
        raise ValidationError(f"Nothing to change: send one or more of {', '.join(FIELDS)}")
    return {field: check_field(field, body[field], registry) for field in FIELDS if field in body}


def check_schedule_id(value: str) -> str:
    if not SCHEDULE_ID.fullmatch(value):
        raise ValidationError("Malformed schedule id: expected 'sch_' followed by 16 hex digits")
    return value
