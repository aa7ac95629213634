"""A refused or failed change is recorded too: for every route that declares an audit action,
an answer of 400 or more (the security middleware's 401 and 403, a validation error, a 404,
a 409, a 429, a 5xx) writes a row of its own with the status and the error message, since the
change's transaction, if it began, rolled back. A row that cannot be written (the database is
down) is logged, and the client still gets the original answer."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from server.audit import store
from server.audit.actions import action_of_route, from_request, path_ids
from server.db.database import DatabaseUnavailable
from server.errors import ApiError
from server.keys import POOL

log = logging.getLogger(__name__)


def _message(body: bytes | None) -> str | None:
    try:
        error = json.loads(body or b"")["error"]
    except (ValueError, TypeError, KeyError):
        return None
    return error if isinstance(error, str) else None


async def _record(request: web.Request, action: str, status: int, message: str | None) -> None:
    outcome = "failed" if status >= 500 else "refused"
    entry = from_request(request, action, path_ids(request), outcome=outcome, status=status, detail=message)
    try:
        await store.record_alone(request.app[POOL], entry)
    except Exception as exc:  # the refusal stands whatever happens to its record
        log.warning("could not record the refused %s in the audit trail: %s", action, exc)


@web.middleware
async def record_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    match_info = request.match_info
    action = None if match_info.http_exception is not None else action_of_route(match_info.route)
    if action is None:
        return await handler(request)
    try:
        response = await handler(request)
    except ApiError as exc:
        await _record(request, action, exc.status, exc.message)
        raise
    except DatabaseUnavailable:
        await _record(request, action, 503, "Database unavailable")
        raise
    except web.HTTPException as exc:
        if exc.status >= 400:
            await _record(request, action, exc.status, exc.reason)
        raise
    except Exception:  # the message may say anything: the row says only that it failed
        await _record(request, action, 500, "Internal server error")
        raise
    if response.status >= 400:
        body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else None
        await _record(request, action, response.status, _message(body))
    return response
