"""Security: authentication and role enforcement, protected mode, CORS, rate limits.

``setup_security(app)`` is called last in ``create_app``, after every route is registered, so
that CORS preflights cover every route whoever added it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator

import psycopg2
from aiohttp import web

from server.db import database
from server.keys import POOL, SETTINGS
from server.security.authenticate import enforce_roles
from server.security.cors import explain_refused_preflights, refuse_foreign_websocket_origins, setup_cors
from server.security.credentials import Authenticator
from server.security.keys import AUTHENTICATOR
from server.security.rate_limit_middleware import add_rate_limit_headers, enforce_rate_limits, rate_limiter_ctx
from server.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_network_refusal(host: str) -> SettingsError:
    return SettingsError(
        f"refusing to listen on {host} with no authentication configured: create a key "
        "(collector-hub keys create --role admin --name NAME), set COLLECTOR_HUB_API_KEYS, "
        "COLLECTOR_HUB_JWT_SECRET or COLLECTOR_HUB_JWT_PUBLIC_KEY_FILE, listen on 127.0.0.1, "
        "or pass --insecure (COLLECTOR_HUB_ALLOW_INSECURE=1)"
    )


def check_protected_mode_before_serving(settings: Settings) -> None:
    """``serve``'s check, before the app starts (aiohttp does not clean up contexts that
    started when a later one fails, so refusing from ``protected_mode_ctx`` alone would leave
    the pool to be torn down by the interpreter, traceback and all)."""
    if is_loopback(settings.host) or settings.allow_insecure or settings.api_keys:
        return
    if settings.jwt_secret or settings.jwt_public_key_file:
        return
    with database.database_url_for(settings.database_url, settings.data_dir) as dsn:
        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('api_keys') IS NOT NULL")
                row = cur.fetchone()
                if row and row[0]:
                    cur.execute("SELECT EXISTS (SELECT 1 FROM api_keys)")
                    row = cur.fetchone()
                    if row and row[0]:
                        return
        finally:
            conn.close()
    raise open_network_refusal(settings.host)


async def protected_mode_ctx(app: web.Application) -> AsyncIterator[None]:
    """Refuse to serve a network with no authentication, and say so when running open."""
    settings = app[SETTINGS]
    if not await app[AUTHENTICATOR].enforcing(app[POOL]):
        if is_loopback(settings.host):
            log.warning(
                "OPEN MODE: no API key or JWT is configured, so every caller is admin; serving loopback (%s) only. "
                "Create a key with `collector-hub keys create --role admin --name NAME` to require one.",
                settings.host,
            )
        elif settings.allow_insecure:
            log.warning(
                "INSECURE: no API key or JWT is configured and the server listens on %s: anyone who can reach it "
                "is admin (COLLECTOR_HUB_ALLOW_INSECURE / --insecure)",
                settings.host,
            )
        else:
            raise open_network_refusal(settings.host)
    yield


def setup_security(app: web.Application) -> None:
    """Enforce roles on every route. Call after all routes are added. (``protected_mode_ctx``
    is added by ``create_app`` right after the database context.)"""
    app[AUTHENTICATOR] = Authenticator(app[SETTINGS])
    app.middlewares.append(refuse_foreign_websocket_origins)
    app.middlewares.append(explain_refused_preflights)
    app.middlewares.append(enforce_roles)
    app.middlewares.append(enforce_rate_limits)  # after roles: it counts per key or token subject
    app.on_response_prepare.append(add_rate_limit_headers)
    app.cleanup_ctx.append(rate_limiter_ctx)
    setup_cors(app)
