"""Protected mode: with no authentication configured the server runs open, on loopback only,
and says so; the first key created turns enforcement on without a restart.

The tests run in file order on one fresh database with no key; the last one creates a key."""

from __future__ import annotations

import logging
import subprocess
import sys

import psycopg2
import pytest
from aiohttp import web

from server.app import create_app
from server.security.api_keys import create_key
from server.security.setup import is_loopback
from server.settings import SettingsError
from tests.support.conditions import eventually
from tests.support.settings import replace_settings


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.5.5.5", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.example.com"))


async def test_open_on_loopback_and_says_so(client, caplog):
    # The `client` fixture is exactly this: no keys, no JWT, 127.0.0.1.
    assert (await client.post("/api/collectors/run", json={"collectors": ["demo"]})).status == 201
    assert (await client.get("/metrics")).status == 200


async def test_the_open_mode_warning_is_logged_at_start(aiohttp_client, settings, caplog):
    caplog.set_level(logging.WARNING, logger="server.security")
    await aiohttp_client(create_app(settings))
    assert any("OPEN MODE" in r.getMessage() for r in caplog.records)


async def test_a_network_address_without_auth_is_refused(settings):
    runner = web.AppRunner(create_app(replace_settings(settings, host="0.0.0.0")))
    try:
        with pytest.raises(SettingsError, match=r"refusing to listen on 0\.0\.0\.0 with no authentication"):
            await runner.setup()
    finally:
        await runner.cleanup()  # what run_app does: the database context started, so it is closed


async def test_insecure_must_be_asked_for_and_is_shouted(aiohttp_client, settings, caplog):
    caplog.set_level(logging.WARNING, logger="server.security")
    client = await aiohttp_client(create_app(replace_settings(settings, host="0.0.0.0", allow_insecure=True)))
    assert (await client.get("/api/collectors")).status == 200
    assert any(r.getMessage().startswith("INSECURE") for r in caplog.records)


def test_serve_refuses_a_network_address_without_auth(database_url, tmp_path):
    # Refused before anything listens: the check runs at start-up, before the socket is bound.
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--host", "0.0.0.0", "--port", "1",
         "--database-url", database_url, "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "COLLECTOR_HUB_RUN_COLLECTORS": "0"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0 with no authentication configured" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


async def test_the_first_key_turns_enforcement_on_without_a_restart(client, database_url):
    assert (await client.get("/api/collectors")).status == 200
    conn = psycopg2.connect(database_url)
    try:
        key, _ = create_key(conn, "first", "read")
    finally:
        conn.close()

    async def refused() -> bool:
        return (await client.get("/api/collectors")).status == 401

    await eventually(refused, timeout=10, what="authentication to be required")
    assert (await client.get("/api/collectors", headers={"X-API-Key": key})).status == 200
    assert (
        await client.post("/api/collectors/run", json={"collectors": ["demo"]}, headers={"X-API-Key": key})
    ).status == 403
