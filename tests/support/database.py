"""The tests' PostgreSQL: one embedded server for the whole run, one migrated template database
on it, and a copy of the template for each test module.

Applying every migration for each module cost about a second per module; copying a migrated
template (``CREATE DATABASE ... TEMPLATE``) costs a fraction of that, and dropping a database
on a server that does not fsync costs almost nothing. The first process of the run that needs
the server (under pytest-xdist, a worker) initialises it (initdb, about a second of CPU),
migrates the template and leaves it running; the other workers connect to it, and the run
stops it at its end. One server for all workers, not one each: a server of its own cost each
worker about 1.5 CPU-s (initdb and the template), or 0.9 copied from a seed, of a suite that is
CPU-bound. Workers see one another's connections, so a test that looks at connections in
``pg_stat_activity`` or kills them keeps to its own module's database
(``datname = current_database()``), as every one does.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import shutil
import signal
import time
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

# The server's own settings: seven workers' apps, collectors and CLI processes at once stay far
# below max_connections.
SERVER_SETTINGS = (*NO_DURABILITY, "max_connections = 500")

# The migrated template on the run's server.
TEMPLATE = "test_template"


# Where the run's PostgreSQL keeps its data, when this machine has it: a memory file system,
# /dev/shm. Measured on this suite's 2-core machine, a module's database copied from the template
# and dropped again (each a checkpoint) cost PostgreSQL 170-330 ms of CPU and 0.5-0.84 CPU-s of
# the machine (the file system's journal and its discards) on the ext4 disk, against 37-43 ms
# and 0.12-0.13 CPU-s in memory; every write a test makes is cheaper in the same way. A data
# directory holds some hundreds of megabytes at most, so a /dev/shm smaller than MEMORY_ROOM
# (a container's default is 64 MB) is not used.
MEMORY_DIRECTORY = Path("/dev/shm")
MEMORY_ROOM = 2 * 1024**3


def scratch_root() -> str | None:
    """The directory to make the tests' PostgreSQL data directories in: MEMORY_DIRECTORY when it
    is writable and has MEMORY_ROOM free, else None (the temporary directory's default)."""
    try:
        stats = os.statvfs(MEMORY_DIRECTORY)
    except OSError:
        return None
    if not os.access(MEMORY_DIRECTORY, os.W_OK | os.X_OK) or stats.f_bavail * stats.f_frsize < MEMORY_ROOM:
        return None
    return str(MEMORY_DIRECTORY)


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


def shared_server(directory: Path) -> str:
    """The admin DSN of the run's server, whose data directory is in ``directory`` (made by the
    run, shared by its processes): started by the first process to ask while the others wait,
    and left running until the run calls stop_shared_server."""
    dsn_file = directory / "dsn"
    with open(directory / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not dsn_file.exists():
            pgdata = directory / "pgdata"
            try:
                _initialise(pgdata)
            except BaseException:
                shutil.rmtree(pgdata, ignore_errors=True)  # the next process starts again
                raise
            # Started again, with its settings; cleanup_mode None: left running when this
            # process exits.
            server = start_embedded_server(pgdata, cleanup_mode=None)
            dsn_file.write_text(server.get_uri())
        return dsn_file.read_text()


def _initialise(pgdata: Path) -> None:
    server = start_embedded_server(pgdata, cleanup_mode="stop")
    try:
        dsn = server.get_uri()
        for setting in SERVER_SETTINGS:  # postgresql.auto.conf, read at the next start
            admin_execute(dsn, f"ALTER SYSTEM SET {setting}")
        admin_execute(dsn, f"CREATE DATABASE {TEMPLATE}")
        apply_migrations(psycopg2.extensions.make_dsn(dsn, dbname=TEMPLATE))
        admin_execute(dsn, f"ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true")
    finally:
        server.cleanup()


def stop_shared_server(directory: Path) -> None:
    """Stop the run's server, if it was started (a fast shutdown: SIGINT to the postmaster, which
    removes its pid file as it exits)."""
    pid_file = directory / "pgdata" / "postmaster.pid"
    if not (directory / "dsn").exists() or not pid_file.exists():
        return
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


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


def truncate(*tables: str) -> str:
    """``TRUNCATE tables CASCADE`` that cannot deadlock with a running app: it first takes
    job_runs' lock, then job_batches', in the order of the app's background statements (the
    watchdog's and the unclaimable check's ``FROM job_runs j JOIN job_batches b ... FOR UPDATE
    OF b, j``). A bare TRUNCATE of job_batches locks it first, then job_runs through the cascade:
    with such a statement between its two locks, PostgreSQL ends one of the two as deadlocked."""
    return (
        "BEGIN; LOCK TABLE job_runs, job_batches IN ACCESS EXCLUSIVE MODE;"
        f" TRUNCATE {', '.join(tables)} CASCADE; COMMIT"
    )


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
