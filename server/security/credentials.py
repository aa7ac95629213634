"""Who is calling: the credential a request presents (API key or JWT, in a header, or for
live streams in the URL or a cookie) and the principal it stands for. The middleware that
enforces each route's role is ``server.security.authenticate``."""

from __future__ import annotations

import dataclasses
import logging
import time

import aiopg
from aiohttp import web

from server.api.roles import STREAM_TOKEN_NAME, is_stream_request
from server.security.api_keys import ConfiguredKey, any_stored_key, find_stored_key, hash_key, match_configured_key
from server.security.tokens import TokenError, TokenVerifier
from server.settings import Settings

log = logging.getLogger(__name__)

MAX_CREDENTIAL_CHARS = 8192
OPEN_MODE_RECHECK_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class Principal:
    """The caller as far as authorisation and rate limits care."""

    role: str | None
    # Whom rate limits count against: a key or a token subject; None means "by address".
    client_id: str | None
    via: str  # "api_key", "jwt", "open" (no auth configured) or "none" (public route)
    # The name of the stored API key it presented (what a batch it starts records); None for
    # a key from the settings, a token, or no credential.
    name: str | None = None
    # The public id of the key it presented ("settings-" and a hash prefix for a key from the
    # settings), and a token's subject; never the credential itself.
    key_id: str | None = None
    subject: str | None = None

    @property
    def actor(self) -> str:
        """Who acted, for the audit trail and ``GET /api/me``: the key's name (or id), the
        token's subject, or how the server let the call in."""
        if self.via == "api_key":
            return self.name or f"key {self.key_id}"
        if self.via == "jwt":
            return f"jwt {self.subject}" if self.subject else "jwt (no subject)"
        return {"open": "open mode", "none": "anonymous"}.get(self.via, self.via)


OPEN = Principal("admin", None, "open")
ANONYMOUS = Principal(None, None, "none")


class Unauthenticated(Exception):
    """401: the message says what was wrong, never echoing the credential."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason  # the collector_hub_auth_failures_total label


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2


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

    async def enforcing(self, pool: aiopg.Pool) -> bool:
        """Whether credentials are required; open mode lasts only until a key exists."""
        if self._enforcing:
            return True
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + OPEN_MODE_RECHECK_SECONDS
            if await any_stored_key(pool):
                self._enforcing = True
                log.warning("an API key exists in the database: authentication is now required")
        return self._enforcing

    async def authenticate(self, request: web.Request, pool: aiopg.Pool) -> Principal:
        credential, source = presented_credential(request)
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise Unauthenticated("credential too long")
        if source != "X-API-Key" and looks_like_jwt(credential):
            return self._from_token(credential)
        return await self._from_key(pool, credential)

    def _from_token(self, token: str) -> Principal:
        if self.verifier is None:
            raise Unauthenticated("bearer tokens are not accepted by this server (no JWT key configured)")
        try:
            claims = self.verifier.verify(token)
        except TokenError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from None
        client_id = f"sub:{claims.subject}" if claims.subject else None
        return Principal(claims.role, client_id, "jwt", subject=claims.subject)

    async def _from_key(self, pool: aiopg.Pool, key: str) -> Principal:
        configured = match_configured_key(key, self.configured_keys)
        if configured is not None:
            key_id = configured.client_id.removeprefix("key:")
            return Principal(configured.role, configured.client_id, "api_key", key_id=key_id)
        stored = await find_stored_key(pool, key)
        if stored is None:
            raise Unauthenticated("invalid API key")
        if stored.revoked:
            raise Unauthenticated("API key revoked")
        return Principal(stored.role, f"key:{stored.key_id}", "api_key", stored.name, key_id=stored.key_id)
