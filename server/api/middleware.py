"""Errors in one place: every failure leaves as ``{"error": "..."}`` with its status."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from server.db.database import DatabaseUnavailable
from server.errors import ApiError
from server.keys import SETTINGS

log = logging.getLogger(__name__)


def error_body(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _too_large(request: web.Request) -> str:
    limit = request.app.get(SETTINGS)
    if limit is None:
        return "Request body too large"
    return f"Request body too large: the limit is {limit.max_body_bytes} bytes (COLLECTOR_HUB_MAX_BODY_BYTES)"


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_body(exc.status, exc.message, exc.headers)
    except DatabaseUnavailable as exc:
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return error_body(503, "Database unavailable; try again shortly", {"Retry-After": "1"})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        message = {
            404: "Not found",
            405: f"Method {request.method} not allowed",
            413: _too_large(request),
        }.get(exc.status, exc.reason)
        return error_body(exc.status, message, headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_body(500, "Internal server error")
