"""Checks for everything a client sends. Each failure is a ValidationError with a message
that says which field is wrong and what is expected."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from collectors.contract import BATCH_ID, JOB_ID, JOB_STATUSES, text_problem
from server.api.roles import STREAM_TOKEN_NAME, is_stream_request
from server.errors import ApiError, NotFoundError, ValidationError

F = TypeVar("F", bound=Callable[..., Any])
_QUERY_ATTR = "__collector_hub_query__"


def accepts_query(*names: str) -> Callable[[F], F]:
    """Declare the query parameters a handler reads. Any other parameter is a 400 that lists
    these (``reject_unknown_query_parameters``); a handler that declares none accepts none.
    Returns the same function, like ``roles.requires``."""

    def mark(handler: F) -> F:
        setattr(handler, _QUERY_ATTR, tuple(names))
        return handler

    return mark


def accepted_query(handler: Any) -> tuple[str, ...]:
    """The query parameters ``handler`` declared (for the OpenAPI test and the middleware)."""
    return tuple(getattr(handler, _QUERY_ATTR, ()))


@web.middleware
async def reject_unknown_query_parameters(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one check, for every route: a misspelt parameter (``?colectors=``) would otherwise
    be ignored silently and answer something the client did not ask for. CORS preflights are
    let through (a browser repeats the real request's query on them)."""
    match_info = request.match_info
    if not request.query or match_info.http_exception is not None or request.method == hdrs.METH_OPTIONS:
        return await handler(request)
    accepted = set(accepted_query(match_info.handler))
    if is_stream_request(request):
        accepted.add(STREAM_TOKEN_NAME)  # streams may carry the credential in the URL
    unknown = sorted(set(request.query) - accepted)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:10])
        known = ", ".join(sorted(accepted)) if accepted else "none"
        raise ValidationError(f"Unknown query parameter(s): {shown}; this route accepts: {known}")
    return await handler(request)


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


def query_list(request: web.Request, name: str) -> list[str] | None:
    """A list parameter, comma-separated and/or repeated (``?status=failed,cancelled`` or
    ``?status=failed&status=cancelled``); None when absent."""
    raw = request.query.getall(name, [])
    if not raw:
        return None
    values = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    if not values:
        raise ValidationError(f"{name} must list at least one value")
    return values


def check_statuses(values: list[str] | None, name: str = "status") -> list[str] | None:
    if values is None:
        return None
    unknown = [v for v in values if v not in JOB_STATUSES]
    if unknown:
        shown = ", ".join(repr(v[:40]) for v in unknown[:10])
        raise ValidationError(f"{name}: unknown status {shown}; statuses are {', '.join(JOB_STATUSES)}")
    return list(dict.fromkeys(values))


def query_timestamp(request: web.Request, name: str) -> dt.datetime | None:
    """An ISO 8601 timestamp (``2026-11-29T14:00:00Z``, an offset, or a date); without an
    offset it is UTC."""
    raw = request.query.get(name)
    if raw is None:
        return None
    # An unencoded "+01:00" arrives as " 01:00" (a "+" in a query string is a space).
    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", raw.strip())
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{name} must be a UTC timestamp like 2026-11-29T14:00:00Z, got {raw[:40]!r}") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    # In UTC: Python takes offsets up to 23:59, PostgreSQL only to 15:59 (and refused the rest
    # with a 500); an offset that moves the time out of Python's years is the caller's mistake.
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationError(f"{name} is out of range once in UTC, got {raw[:40]!r}") from None


def encode_cursor(started_at: dt.datetime, row_id: str) -> str:
    """An opaque cursor for the position after (started_at, row_id)."""
    raw = f"{started_at.astimezone(dt.UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(request: web.Request, id_pattern: re.Pattern[str]) -> tuple[dt.datetime, str] | None:
    """``?cursor=`` as (started_at, id), None when absent; a 400 for anything this server
    did not hand out."""
    raw = request.query.get("cursor")
    if raw is None:
        return None
    try:
        text = base64.urlsafe_b64decode(raw.strip() + "=" * (-len(raw.strip()) % 4)).decode()
        stamp, row_id = text.split("|")
        started_at = dt.datetime.fromisoformat(stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor is not valid: pass the next_cursor of a previous page unchanged") from None
    if started_at.tzinfo is None or not id_pattern.fullmatch(row_id):
        raise ValidationError("cursor is not valid: pass the next_cursor of a previous page unchanged")
    return started_at, row_id


def query_window(request: web.Request, lo_seconds: int, hi_seconds: int, default: str) -> tuple[str, int]:
    """``?window=`` as hours or days (``24h``, ``7d``): the text and its length in seconds."""
    raw = request.query.get("window", default).strip()
    match = re.fullmatch(r"([0-9]{1,5})([hd])", raw)
    if match is None:
        raise ValidationError(f"window must be a number of hours or days like 24h or 7d, got {raw[:40]!r}")
    seconds = int(match[1]) * (3600 if match[2] == "h" else 86400)
    if not lo_seconds <= seconds <= hi_seconds:
        raise ValidationError(f"window must be from {lo_seconds // 3600}h to {hi_seconds // 86400}d, got {raw!r}")
    return raw, seconds
