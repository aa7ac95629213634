"""The tests' PostgreSQL: one server per pytest process, one migrated template database per
server, and a copy of the template for each test module.

Applying every migration for each module cost about a second per module; copying a migrated
template (``CREATE DATABASE ... TEMPLATE``) costs a fraction of that, and dropping a database
on a server that does not fsync costs almost nothing. Under pytest-xdist each worker is its own
pytest process, so it starts its own embedded server: no test sees another worker's
connections in ``pg_stat_activity``, and a test that kills every connection of a server kills
only its own worker's.

The servers of one run start from one seed: a data directory initialised (initdb, about a second
of CPU) and given the migrated template once, by the first process that needs a server, then
stopped; every process copies its files and starts the copy, which already holds the template.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from server.db.database import apply_migrations, start_embedded_server

# Durability the tests do not need: a crash of this machine loses a throwaway server's data,
# nothing else. Each commit, each DROP DATABASE (a checkpoint) and each template copy is then
# much cheaper. Visibility and locking are unchanged, so no test sees a difference.
NO_DURABILITY = ("fsync = off", "synchronous_commit = off", "full_page_writes = off")

# The migrated template in the seed, and so in every server started from it.
SEED_TEMPLATE = "test_template"


def worker_name() -> str:
    """``gw0``, ``gw1``... under pytest-xdist, ``main`` without it: part of every name this
    process makes on a server that other processes may share."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def admin_execute(admin_dsn: str, sql: str) -> None:
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def seeded_data_directory(seed: Path) -> Path:
    """The seed's data directory in ``seed`` (a directory every process of the run shares),
    made by the first process to ask while the others wait: initialised, without durability,
    holding SEED_TEMPLATE, and stopped."""
    pgdata = seed / "pgdata"
    with open(seed / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (seed / "ready").exists():
            try:
                _make_seed(pgdata)
            except BaseException:
                shutil.rmtree(pgdata, ignore_errors=True)  # the next process starts again
                raise
            (seed / "ready").touch()
    return pgdata


def _make_seed(pgdata: Path) -> None:
    server = start_embedded_server(pgdata, cleanup_mode="stop")
    try:
        dsn = server.get_uri()
        for setting in NO_DURABILITY:  # postgresql.auto.conf: the copies start with them
            admin_execute(dsn, f"ALTER SYSTEM SET {setting}")
        admin_execute(dsn, f"CREATE DATABASE {SEED_TEMPLATE}")
        apply_migrations(psycopg2.extensions.make_dsn(dsn, dbname=SEED_TEMPLATE))
        admin_execute(dsn, f"ALTER DATABASE {SEED_TEMPLATE} WITH IS_TEMPLATE true")
    finally:
        server.cleanup()


@contextmanager
def embedded_test_server(seed_pgdata: Path) -> Iterator[str]:
    """A throwaway embedded PostgreSQL started from a copy of a seed's data directory (its
    files, owners and modes: PostgreSQL runs as a user of its own when the tests run as root);
    yields its admin DSN."""
    with tempfile.TemporaryDirectory(prefix="ch-test-pg-") as tmp:
        pgdata = Path(tmp) / "pgdata"
        subprocess.run(["cp", "-a", str(seed_pgdata), str(pgdata)], check=True)
        server = start_embedded_server(pgdata, cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@contextmanager
def template_database(admin_dsn: str) -> Iterator[str]:
    """A database with every migration from sql/ applied, marked as a template, on a server the
    tests do not own (COLLECTOR_HUB_TEST_DATABASE_URL); yields its name."""
    name = f"test_template_{worker_name()}_{secrets.token_hex(4)}"
    admin_execute(admin_dsn, f"CREATE DATABASE {name}")
    try:
        apply_migrations(psycopg2.extensions.make_dsn(admin_dsn, dbname=name))
        admin_execute(admin_dsn, f"ALTER DATABASE {name} WITH IS_TEMPLATE true")
        yield name
    finally:
        admin_execute(admin_dsn, f"ALTER DATABASE {name} WITH IS_TEMPLATE false")
        admin_execute(admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def copy_of_template(admin_dsn: str, template: str, label: str, *, file_copy: bool) -> Iterator[str]:
    """A new database copied from ``template``, dropped on exit; yields its DSN.

    ``file_copy``: copy the files (PostgreSQL 15+) instead of writing the copy to the WAL: faster
    for a small database, but it checkpoints, which costs little only without fsync."""
    name = f"test_{label[:32]}_{worker_name()}_{secrets.token_hex(4)}".lower()
    strategy = " STRATEGY FILE_COPY" if file_copy else ""
    admin_execute(admin_dsn, f"CREATE DATABASE {name} TEMPLATE {template}{strategy}")
    try:
        yield psycopg2.extensions.make_dsn(admin_dsn, dbname=name)
    finally:
        admin_execute(admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fetch(db: Any, sql: str, *params: Any) -> Any:
    """The first row of a query as a tuple (or None). For sync tests: it blocks the thread."""
    with db.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


# Arranging and reading rows from an async test. The ``db`` fixture is a plain psycopg2
# connection: called directly inside an async test it blocks the event loop the app under
# test runs on, and a statement that waits for a lock one of the app's connections holds
# then waits forever (the app cannot commit while its loop is blocked; commit 36a2b0d records
# the suite hanging on exactly this). These run the statement on a thread instead.


def _execute(db: Any, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, params)
        return [dict(row) for row in cur.fetchall()] if cur.description else []


async def execute(db: Any, sql: str, *params: Any) -> None:
    """Run one statement on the ``db`` connection without blocking the event loop."""
    await asyncio.to_thread(_execute, db, sql, params)


async def fetch_rows(db: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Every row of a query, as dicts, without blocking the event loop."""
    return await asyncio.to_thread(_execute, db, sql, params)


async def fetch_row(db: Any, sql: str, *params: Any) -> dict[str, Any] | None:
    """The first row of a query (or None), without blocking the event loop."""
    found = await fetch_rows(db, sql, *params)
    return found[0] if found else None
