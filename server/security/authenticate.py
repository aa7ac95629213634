"""Who is calling, and may they: the enforcement of the role each handler declares.

Default deny: a route whose handler declares no role (``server/api/roles.py``) is refused to
everyone. ``public`` routes need nothing. For the others the caller shows an API key
(``X-API-Key``) or a JWT (``Authorization: Bearer``); streams (``/api/ws`` and paths ending in
``/events``) may also carry either as an ``access_token`` query parameter or cookie, because
a browser's EventSource and WebSocket cannot set headers. 401 for missing or bad credentials,
403 for a role that is not enough, both ``{"error": "..."}``.

Protected mode: with no key in settings, no JWT configured and no key ever created in the
database, the server is open (every caller is admin), and ``security_ctx`` only lets that
happen on a loopback address. Creating the first key with ``collector-hub keys create`` turns
enforcement on within ``OPEN_MODE_RECHECK_SECONDS``, with no restart; it never turns off.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from server.api.middleware import error_body
from server.api.roles import role_of_route, role_satisfies
from server.audit.actor import ANONYMOUS as NOBODY
from server.audit.actor import Actor
from server.audit.keys import ACTOR
from server.keys import POOL
from server.observability.metrics import AUTH_FAILURES
from server.security.api_keys import key_id_of
from server.security.credentials import ANONYMOUS, OPEN, Principal, Unauthenticated, presented_credential
from server.security.keys import AUTHENTICATOR, PRINCIPAL

log = logging.getLogger(__name__)

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="collector-hub"'}


def refusal(status: int, reason: str, message: str) -> web.Response:
    AUTH_FAILURES.labels(reason).inc()
    return error_body(status, message, CHALLENGE if status == 401 else None)


def actor_of(principal: Principal) -> Actor:
    """The caller as the audit trail names it (server/audit/)."""
    kind = principal.via if principal.via in ("api_key", "jwt", "open") else "anonymous"
    return Actor(principal.actor, kind, principal.key_id, principal.role)


def unauthenticated_actor(request: web.Request) -> Actor:
    """A refused caller: anonymous, with the public id of the database key it presented, if any."""
    try:
        credential, _ = presented_credential(request)
    except Unauthenticated:
        return NOBODY
    return Actor(NOBODY.name, NOBODY.kind, key_id_of(credential))


@web.middleware
async def enforce_roles(request: web.Request, handler: Handler) -> web.StreamResponse:
    match_info = request.match_info
    if match_info.http_exception is not None:
        return await handler(request)  # no such route or method: the usual 404/405
    needed = role_of_route(match_info.route)
    if needed is None:
        log.error("refusing %s %s: its handler declares no role", request.method, match_info.route.resource)
        return refusal(403, "undeclared", "This route is not open to any role")
    if needed == "public":
        request[PRINCIPAL] = ANONYMOUS
        return await handler(request)
    authenticator = request.app[AUTHENTICATOR]
    if not await authenticator.enforcing(request.app[POOL]):
        request[PRINCIPAL] = OPEN
        request[ACTOR] = actor_of(OPEN)
        return await handler(request)
    try:
        principal = await authenticator.authenticate(request, request.app[POOL])
    except Unauthenticated as exc:
        request[ACTOR] = unauthenticated_actor(request)
        return refusal(401, exc.reason, str(exc)[:200])
    request[ACTOR] = actor_of(principal)
    if principal.role is None or not role_satisfies(principal.role, needed):
        granted = principal.role or "no role"
        return refusal(403, "forbidden", f"This needs the {needed} role; these credentials grant {granted}")
    request[PRINCIPAL] = principal
    return await handler(request)
