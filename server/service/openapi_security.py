"""Security in the OpenAPI document (server/security/): the schemes, and the responses the
security layer adds to an operation (401 and 403 unless public, 503 where the database may be
reached, 429 where reads are rate-limited).

Applied to every operation of every part, including ones added later, so that a new route is
documented as needing credentials unless it is listed as public here. The auth tests check this
list against the roles the handlers declare. Which operations are rate-limited is not decided
here: the rate limiter's own rule (``is_rate_limited_route``) is asked for each operation.
"""

from __future__ import annotations

from server.openapi.components import Schema, error
from server.security.rate_limit_middleware import is_rate_limited_route
from server.service.openapi import CONSOLE_OPERATIONS

PUBLIC_OPERATIONS = frozenset({"listDocs", "getDoc", "getOpenApi", "healthz", "readyz", "favicon"}) | {
    op for op, _ in CONSOLE_OPERATIONS.values()
}
# Operations documented without the database's 503: the public ones. Any other operation may
# reach the database, if only for the API-key lookup of its credentials; of the public ones
# only readyz queries it, and it documents its own 503.
NO_DATABASE_OPERATIONS = PUBLIC_OPERATIONS
SECURITY_SCHEMES: dict[str, Schema] = {
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A key from `collector-hub keys create` or COLLECTOR_HUB_API_KEYS.",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256, RS256 or ES256; exp required; role from the role claim or scope.",
    },
}
RATE_LIMIT_HEADERS: dict[str, Schema] = {
    "Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "RateLimit-Limit": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "RateLimit-Remaining": {"required": True, "schema": {"type": "string", "const": "0"}},
    "RateLimit-Reset": {
        "required": True,
        "description": "Seconds until the window starts again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}


def with_security(paths: dict[str, Schema]) -> dict[str, Schema]:
    """Credentials, 401 and 403 on every non-public operation; 503 where the database is
    needed; 429 on rate-limited reads."""
    for path, item in paths.items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if op["operationId"] not in PUBLIC_OPERATIONS:
                op["security"] = [{"apiKey": []}, {"bearer": []}]
                op["responses"].setdefault(
                    "401", error("Missing, unknown, revoked, expired or forged credentials (WWW-Authenticate: Bearer).")
                )
                op["responses"].setdefault("403", error("The credentials' role is not enough for this operation."))
            if op["operationId"] not in NO_DATABASE_OPERATIONS:
                unavailable = error("PostgreSQL cannot be reached, or the connection broke mid-request; try again.")
                unavailable["headers"] = {"Retry-After": {"required": True, "schema": {"type": "string", "const": "1"}}}
                op["responses"].setdefault("503", unavailable)
            if is_rate_limited_route(method.upper(), path):
                too_many = error("Over the rate limit for this client (COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE).")
                too_many["headers"] = RATE_LIMIT_HEADERS
                op["responses"].setdefault("429", too_many)
    return paths
