"""Checks for everything a client sends. Each failure is a ValidationError with a message
that says which field is wrong and what is expected."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from collectors.contract import BATCH_ID, JOB_ID, text_problem
from server.errors import ApiError, NotFoundError, ValidationError


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object. The size limit is the app's ``client_max_size``."""
    if (
        request.content_type not in ("application/json", "application/octet-stream", "text/plain")
        and request.body_exists
    ):
        raise ApiError("Content-Type must be application/json", status=415)
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise ValidationError("Request body must be a JSON object")
    try:
        # Decode ourselves: json.loads(bytes) would guess UTF-16/32 from the first bytes.
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("Request body must be UTF-8 encoded JSON") from None
    try:
        body = json.loads(text)
    except RecursionError:
        raise ValidationError("Malformed JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    return body


def reject_unknown_fields(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValidationError(
            f"Unknown field(s): {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )


def check_text(name: str, value: Any, max_chars: int, *, optional: bool = True) -> str | None:
    """A string PostgreSQL can store: UTF-8 encodable (no lone surrogates) and no NUL."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string")
    problem = text_problem(name, value, max_chars)
    if problem is not None:
        raise ValidationError(problem)
    return value


def check_batch_id(value: str) -> str:
    if not BATCH_ID.fullmatch(value):  # not match: "$" also matches before a final newline
        raise ValidationError("Malformed batch id: expected 'bc_' followed by 8 digits")
    return value


def check_job_id(value: str) -> str:
    if not JOB_ID.fullmatch(value):
        raise ValidationError("Malformed job id: expected two letters or digits, '_', then 8 digits")
    return value


# A malformed id in a URL path names nothing, so it is answered like an unknown one: clients
# written to the contract handle a bad batch id as a 404 (docs/DASHBOARD_AI_COLLECTOR_TRACKING_GUIDE.md).
# Ids in bodies, queries and WebSocket messages stay 400s: there they are input to correct.
BATCH_NOT_FOUND = "Batch not found (batch ids look like bc_12345678)"
JOB_NOT_FOUND = "Job not found (job ids look like de_12345678: two letters or digits, '_', 8 digits)"


def path_batch_id(request: web.Request) -> str:
    """The ``{batch_id}`` of the URL; a malformed one is a 404."""
    value = request.match_info["batch_id"]
    if not BATCH_ID.fullmatch(value):  # not match: "$" also matches before a final newline
        raise NotFoundError(BATCH_NOT_FOUND)
    return value


def path_job_id(request: web.Request) -> str:
    """The ``{job_id}`` of the URL; a malformed one is a 404."""
    value = request.match_info["job_id"]
    if not JOB_ID.fullmatch(value):
        raise NotFoundError(JOB_NOT_FOUND)
    return value


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw.strip()):
        raise ValidationError(f"{name} must be an integer between {lo} and {hi}, got {raw[:20]!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise ValidationError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def collector_list(raw: str | None, known: Mapping[str, object], name: str = "collectors") -> list[str] | None:
    """A comma-separated list of known collector names, or None when the parameter is absent."""
    if raw is None:
        return None
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        raise ValidationError(f"{name} must list at least one collector name")
    return check_collector_names(names, known, name)


def check_collector_names(names: list[Any], known: Mapping[str, object], name: str = "collectors") -> list[str]:
    if not all(isinstance(n, str) for n in names):
        raise ValidationError(f"{name} must be a list of collector names (strings)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError(f"{name} lists a collector more than once: {', '.join(duplicates)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        shown = ", ".join(repr(n[:64]) for n in unknown[:10])
        raise ValidationError(f"Unknown collector(s): {shown}. Known collectors: {', '.join(sorted(known))}")
    return names
