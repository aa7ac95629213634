"""Who is calling, and may they: the enforcement of the role each handler declares.

Default deny: a route whose handler declares no role (``server/roles.py``) is refused to
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

import dataclasses
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from server.api.middleware import error_body
from server.api.roles import role_of_route, role_satisfies
from server.keys import AUTHENTICATOR, POOL, PRINCIPAL
from server.observability.metrics import AUTH_FAILURES
from server.security.api_keys import ConfiguredKey, any_stored_key, find_stored_key, hash_key, match_configured_key
from server.security.tokens import TokenError, TokenVerifier
from server.settings import Settings

log = logging.getLogger(__name__)

STREAM_TOKEN_NAME = "access_token"
MAX_CREDENTIAL_CHARS = 8192
OPEN_MODE_RECHECK_SECONDS = 2.0
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="collector-hub"'}


@dataclasses.dataclass(frozen=True)
class Principal:
    """The caller as far as authorisation and rate limits care."""

    role: str | None
    # Whom rate limits count against: a key or a token subject; None means "by address".
    client_id: str | None
    via: str  # "api_key", "jwt", "open" (no auth configured) or "none" (public route)


OPEN = Principal("admin", None, "open")
ANONYMOUS = Principal(None, None, "none")


class Unauthenticated(Exception):
    """401: the message says what was wrong, never echoing the credential."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason  # the collector_hub_auth_failures_total label


def is_stream_request(request: web.Request) -> bool:
    """Routes that may take a credential from the URL or a cookie (live streams)."""
    return request.path == "/api/ws" or request.path.endswith("/events")


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.configured_keys = tuple(ConfiguredKey(role, hash_key(key)) for role, key in settings.api_keys)
        self.verifier = TokenVerifier.from_settings(
            settings.jwt_secret,
            settings.jwt_public_key_file,
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.jwt_role_claim,
        )
        self._enforcing = bool(self.configured_keys) or self.verifier is not None
        self._next_check = 0.0

    @property
    def configured_in_settings(self) -> bool:
        return bool(self.configured_keys) or self.verifier is not None

    async def enforcing(self, app: web.Application) -> bool:
        """Whether credentials are required; open mode lasts only until a key exists."""
        if self._enforcing:
            return True
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + OPEN_MODE_RECHECK_SECONDS
            if await any_stored_key(app[POOL]):
                self._enforcing = True
                log.warning("an API key exists in the database: authentication is now required")
        return self._enforcing

    async def authenticate(self, request: web.Request) -> Principal:
        credential, source = presented_credential(request)
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise Unauthenticated("credential too long")
        if source != "X-API-Key" and looks_like_jwt(credential):
            return self._from_token(credential)
        return await self._from_key(request.app, credential)

    def _from_token(self, token: str) -> Principal:
        if self.verifier is None:
            raise Unauthenticated("bearer tokens are not accepted by this server (no JWT key configured)")
        try:
            claims = self.verifier.verify(token)
        except TokenError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from None
        client_id = f"sub:{claims.subject}" if claims.subject else None
        return Principal(claims.role, client_id, "jwt")

    async def _from_key(self, app: web.Application, key: str) -> Principal:
        configured = match_configured_key(key, self.configured_keys)
        if configured is not None:
            return Principal(configured.role, configured.client_id, "api_key")
        stored = await find_stored_key(app[POOL], key)
        if stored is None:
            raise Unauthenticated("invalid API key")
        if stored.revoked:
            raise Unauthenticated("API key revoked")
        return Principal(stored.role, f"key:{stored.key_id}", "api_key")


def presented_credential(request: web.Request) -> tuple[str, str]:
    """The credential and where it came from; raises Unauthenticated when there is none."""
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip(), "X-API-Key"
    authorization = request.headers.get("Authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        return value.strip(), "Authorization"
    if is_stream_request(request):
        in_url = request.query.get(STREAM_TOKEN_NAME) or request.cookies.get(STREAM_TOKEN_NAME)
        if in_url:
            return in_url, STREAM_TOKEN_NAME
    raise Unauthenticated(
        "credentials required: send an X-API-Key header or Authorization: Bearer <token>", reason="missing"
    )


def refusal(status: int, reason: str, message: str) -> web.Response:
    AUTH_FAILURES.labels(reason).inc()
    return error_body(status, message, CHALLENGE if status == 401 else None)


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
    if not await authenticator.enforcing(request.app):
        request[PRINCIPAL] = OPEN
        return await handler(request)
    try:
        principal = await authenticator.authenticate(request)
    except Unauthenticated as exc:
        return refusal(401, exc.reason, str(exc)[:200])
    if principal.role is None or not role_satisfies(principal.role, needed):
        granted = principal.role or "no role"
        return refusal(403, "forbidden", f"This needs the {needed} role; these credentials grant {granted}")
    request[PRINCIPAL] = principal
    return await handler(request)
