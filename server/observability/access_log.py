"""One log line per request, with a request id, and the HTTP metrics.

The id comes from the client's ``X-Request-Id`` when it is a plain token (so a proxy's id
follows the request through), else a new one; it is sent back on every response, streams
included (set when the response is prepared). Query parameters that can carry a credential
(``access_token`` for streams, see the security middleware) are redacted before the line is
written, and no header is ever logged, so no secret reaches a log.

aiohttp's own access logger is turned off in ``serve``: it logs the raw request line, query
string and all.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from server.api.client_address import client_address
from server.keys import REQUEST_ID, SETTINGS
from server.observability.log_format import current_request_id
from server.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

log = logging.getLogger("collector_hub.access")

REQUEST_ID_HEADER = "X-Request-Id"
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Lower-cased query parameter names whose values are never logged.
SECRET_QUERY_PARAMETERS = frozenset({"access_token", "token", "api_key", "apikey", "key", "jwt", "password", "secret"})
REDACTED = "REDACTED"
# Status logged for a request whose client went away before it was answered (nginx's code).
CLIENT_CLOSED = 499


def request_id_of(request: web.Request) -> str:
    """The request's id, chosen once: the client's if it is a plain token, else a new one."""
    if REQUEST_ID in request:
        return request[REQUEST_ID]
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    chosen = offered if _GOOD_REQUEST_ID.match(offered) else uuid.uuid4().hex
    request[REQUEST_ID] = chosen
    return chosen


def redacted_target(request: web.Request) -> str:
    """Path and query as logged: values of credential-bearing parameters replaced."""
    if not request.query_string:
        return request.path
    parts = []
    for name, value in request.query.items():
        shown = REDACTED if name.lower() in SECRET_QUERY_PARAMETERS else value
        parts.append(f"{quote(name, safe='')}={quote(shown, safe='')}")
    return request.path + "?" + "&".join(parts)


def route_label(request: web.Request) -> str:
    """The route template (``/api/collectors/runs/job/{job_id}``), never the raw path, so the
    number of metric series stays bounded whatever clients send."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every response, WebSocket and SSE included."""
    response.headers[REQUEST_ID_HEADER] = request_id_of(request)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request_id_of(request)
    token = current_request_id.set(request_id)
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects and the like, raised past json_errors
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        current_request_id.reset(token)
        elapsed = time.monotonic() - started
        route = route_label(request)
        HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        HTTP_REQUEST_DURATION.labels(route).observe(elapsed)
        target = redacted_target(request)
        # Behind a trusted proxy, the client rather than the proxy.
        remote = client_address(request, request.app[SETTINGS].trusted_proxies)
        log.info(
            '%s %s "%s %s" %d %.1fms',
            request_id,
            remote,
            request.method,
            target,
            status,
            elapsed * 1000,
            extra={
                "request_id": request_id,
                "remote": remote,
                "method": request.method,
                "path": target,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
