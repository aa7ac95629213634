"""Fixtures: a real PostgreSQL (embedded, or COLLECTOR_HUB_TEST_DATABASE_URL), a fresh database
per test module copied from a template with the migrations from sql/ applied, and the app from
the real factory.

The suite runs in parallel worker processes (pytest-xdist, ``-n auto --dist loadfile`` in
pyproject.toml): each test module runs whole, in file order, on one worker, and the workers
share one embedded PostgreSQL (tests/support/database.py says why). ``pytest -n 0`` runs it in
one process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
import uvloop
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.support.database import (
    TEMPLATE,
    copy_of_template,
    scratch_root,
    shared_server,
    stop_shared_server,
    template_database,
)
from tests.support.inventory import fill_inventory

# The event loops the server runs on (docs/DEPLOYMENT.md, --loop). A module marked
# ``every_loop`` runs each of its async tests on each of them; every other test runs on
# asyncio's own loop, as it would without this hook.
EVENT_LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


# The directory of the run's PostgreSQL (tests/support/database.py), shared by the run and its
# workers: made by the run (in its stash), handed to each worker in its workerinput.
SERVER_KEY = pytest.StashKey[str]()
SERVER_DIRECTORY = "collector_hub_server"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "every_loop: run each async test on every event loop (asyncio's, uvloop)")
    if not hasattr(config, "workerinput"):
        # Outside pytest's temporary root, which is 0700: PostgreSQL may run as a user of its
        # own (see embedded_data_dir); in memory when the machine allows (scratch_root). Stopped
        # and removed once the workers are done.
        directory = tempfile.mkdtemp(prefix="ch-test-pg-", dir=scratch_root())
        config.stash[SERVER_KEY] = directory
        config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
        config.add_cleanup(lambda: stop_shared_server(Path(directory)))
        # A run ended by SIGTERM (a CI job's timeout, ``timeout``, ``kill``) ends as on Ctrl-C,
        # so that the cleanups above run: Python's default for SIGTERM exits at once, which
        # left the run's PostgreSQL running and its data in memory.
        signal.signal(signal.SIGTERM, _interrupt)
        _temporary_files_in_memory()


# The run's temporary directory (TMPDIR), when the machine has memory to spare for it
# (scratch_root) and the user has not chosen one: pytest's tmp_path, every tempfile, and what
# the processes the tests start write there (a ``serve``'s files, the wheel and virtual
# environment of tests/test_packaging.py, Chromium's profiles) then never reach the disk's
# file system and its journal. The memory file system itself, as /tmp: a directory every user
# shares (sticky), where pytest keeps its pytest-of-USER, with its own checks, and its last
# three runs' tmp_path directories, and tempfile makes its names safely; and a path as short
# as /tmp's, since paths show in what tests print (tests/browser/test_console_logs.py wants a
# traceback naming a tmp_path file on one line at 1280 pixels). Set in the run's process
# before it starts its workers, so that every process of the run inherits it.
# tests/test_packaging.py alone, two rounds each, alternated (2026-12-07): 8.3 and 8.5 CPU-s
# (2.5 and 2.9 of them in the kernel) with /tmp on the ext4 disk, 7.3 and 6.7 (1.2) in memory.
def _temporary_files_in_memory() -> None:
    root = scratch_root()
    if root is not None and not os.environ.get("TMPDIR"):
        os.environ["TMPDIR"] = root
        tempfile.tempdir = None  # asked again, from TMPDIR


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the run, before it starts a worker."""
    node.workerinput[SERVER_DIRECTORY] = node.config.stash[SERVER_KEY]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.get_closest_marker("every_loop") is not None:
        return dict(EVENT_LOOPS)
    return {"asyncio": EVENT_LOOPS["asyncio"]}


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for ``-n auto``: three per core, at most eight. A test spends part of its time
    waiting (for a collector process, a server, a browser, a timer), so one core keeps about
    three workers busy; each worker costs its own start (about 2.5 CPU-s: pytest, its plugins,
    collecting the suite), so more only add CPU. The whole suite on the 2-core machine, quiet,
    one run each (2026-12-07): 4 workers 202 s, 5 188 s, 6 178 s, 7 193 s, 8 188 s; the run's
    CPU was about the same (341-346 CPU-s) up to six and 369-373 with seven or eight."""
    return min(8, 3 * len(os.sched_getaffinity(0)))


# The modules that take longest, longest first. A worker takes the next module whenever it
# finishes one, in collection order; these are collected first so that no worker is left
# running one of them alone at the end of the run (longest first is what keeps the workers'
# ends together). Only the order depends on this list: a module not named here runs after
# these, in file order. The modules of five seconds or more, by their median time on a worker
# over five whole runs on the 2-core machine (2026-12-07); a module missing from the list, or
# one that has grown, costs the run its tail, not a failure: in one run, five unlisted modules
# of 14-18 s started last and the run's last worker ended 7 s after its first.
LONGEST_FIRST = (
    "tests/fuzz/test_rest.py",
    "tests/fuzz/test_runs.py",
    "tests/fuzz/test_variances.py",
    "tests/browser/test_console_shell.py",
    "tests/browser/test_console_live.py",
    "tests/browser/test_console_variances.py",
    "tests/test_inventory_ninja.py",
    "tests/browser/test_console_layout.py",
    "tests/test_runner_claims_and_runs.py",
    "tests/browser/test_console_runs.py",
    "tests/browser/test_console_logs.py",
    "tests/test_packaging.py",
    "tests/test_cli_run.py",
    "tests/browser/test_console_admin.py",
    "tests/test_auth.py",
    "tests/test_webhooks_delivery.py",
    "tests/browser/test_console_overview.py",
    "tests/test_stats_summaries.py",
    "tests/test_runner_routing.py",
    "tests/test_variances_api.py",
    "tests/test_live_heartbeat.py",
    "tests/test_suite_plumbing.py",
    "tests/test_webhooks_restart.py",
    "tests/test_schedules_fire.py",
    "tests/test_inventory_threatlocker.py",
    "tests/test_serve.py",
    "tests/test_retries.py",
    "tests/test_api_bad_input.py",
    "tests/test_schedules_cli.py",
    "tests/test_openapi.py",
    "tests/test_cli_logs.py",
    "tests/test_progress.py",
    "tests/test_job_logs.py",
    "tests/test_cli_collectors.py",
    "tests/test_webhooks_api.py",
    "tests/browser/test_console_schedules.py",
    "tests/test_schedules_api.py",
    "tests/test_serve_event_loop.py",
    "tests/test_after_steps.py",
    "tests/test_layout.py",
    "tests/test_api_runs.py",
    "tests/test_live_ws.py",
    "tests/test_live_resilience.py",
    "tests/test_history.py",
    "tests/test_serve_operations.py",
    "tests/test_inventory_cli.py",
    "tests/test_rate_limits.py",
    "tests/test_cli_imports.py",
    "tests/test_variance_checks.py",
    "tests/test_audit.py",
    "tests/browser/test_console_rights.py",
    "tests/test_live_sse.py",
    "tests/test_json_logs.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker: the longest modules first (LONGEST_FIRST); and refuse to run with two tests
    under one id: pytest-xdist hands tests out by id and would run only one of them, silently
    (see the pytest pin in setup.py)."""
    if not hasattr(config, "workerinput"):
        return
    duplicated = sorted(nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1)
    if duplicated:
        raise pytest.UsageError(
            f"{len(duplicated)} test ids name more than one test ({duplicated[0]}, ...): pytest-xdist would run"
            " one of each. Install the test dependencies again (pip install -e '.[test]'), or run with -n 0."
        )
    rank = {path: position for position, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: file order otherwise


@pytest.fixture(scope="session")
def owned_server() -> bool:
    """True when the tests run their own embedded PostgreSQL (no COLLECTOR_HUB_TEST_DATABASE_URL)."""
    return not os.environ.get("COLLECTOR_HUB_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def admin_dsn(owned_server: bool, pytestconfig: pytest.Config) -> Iterator[str]:
    if not owned_server:
        yield os.environ["COLLECTOR_HUB_TEST_DATABASE_URL"]
        return
    workerinput = getattr(pytestconfig, "workerinput", None)
    directory = workerinput[SERVER_DIRECTORY] if workerinput is not None else pytestconfig.stash[SERVER_KEY]
    yield shared_server(Path(directory))


@pytest.fixture(scope="session")
def migrated_template(admin_dsn: str, owned_server: bool) -> Iterator[str]:
    """The name of a database with every migration applied, which each module's database copies:
    on our own server, the one it was started with."""
    if owned_server:
        yield TEMPLATE
        return
    with template_database(admin_dsn) as name:
        yield name


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A data directory for a ``serve`` on the embedded PostgreSQL, outside pytest's own
    temporary root: run as root, PostgreSQL runs as a user of its own that must reach the
    directory, and every pytest process that starts resets /tmp/pytest-of-USER to 0700, which
    cuts a server off in the middle of initdb when two test runs share the machine. In memory
    when the machine allows, as the run's own server (scratch_root)."""
    with tempfile.TemporaryDirectory(prefix="ch-data-", dir=scratch_root()) as tmp:
        yield Path(tmp) / "data"


@pytest.fixture(scope="module")
def database_url(
    admin_dsn: str, migrated_template: str, owned_server: bool, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh, migrated database for each test module."""
    label = request.module.__name__.rsplit(".", 1)[-1]
    with copy_of_template(admin_dsn, migrated_template, label, file_copy=owned_server) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def module_connections(database_url: str) -> Iterator[list[psycopg2.extensions.connection]]:
    """The ``db`` connection the module's tests share (at most one), closed with the module."""
    kept: list[psycopg2.extensions.connection] = []
    try:
        yield kept
    finally:
        for conn in kept:
            conn.close()


@pytest.fixture
def db(
    database_url: str, module_connections: list[psycopg2.extensions.connection]
) -> Iterator[psycopg2.extensions.connection]:
    """A plain autocommit connection for arranging and checking rows directly.

    One session for the module's tests, as if new for each: each test that asks gets it in
    autocommit with a session's defaults (``DISCARD ALL``: settings, LISTENs, advisory locks,
    prepared statements and temporary tables gone), and one it closed or broke (a test that
    terminates backends) is replaced. A connection each costs PostgreSQL a backend's start and
    its cold catalog caches: 565 tests in 57 modules ask for ``db``."""
    if not module_connections:
        conn = psycopg2.connect(database_url)
        conn.autocommit = True
        module_connections.append(conn)
    conn = module_connections[0]
    try:
        yield conn
    finally:
        if not _fresh_session(conn):
            module_connections.clear()
            conn.close()


def _fresh_session(conn: psycopg2.extensions.connection) -> bool:
    """Put a used ``db`` connection back as a new session would be; False if it cannot be."""
    if conn.closed:
        return False
    try:
        conn.rollback()  # a test that left autocommit and a transaction open
        conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT", deferrable="DEFAULT", autocommit=True)
        conn.cursor_factory = None
        with conn.cursor() as cur:
            cur.execute("DISCARD ALL")
    except psycopg2.Error:
        return False
    conn.notifies.clear()
    conn.notices.clear()
    return True


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an API-only app (no runner): tests that need a runner replace fields. A
    batch gets the cross-vendor checks (tests/test_after_steps.py), and a vendor collector
    retries (tests/test_retries.py), only when a test asks."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        run_collectors=False,
        cross_vendor_by_default=False,
        vendor_retries=0,
    )


@pytest.fixture
def filled(db: psycopg2.extensions.connection, database_url: str) -> dict[str, Any]:
    """Inventory rows for the read API and the console's Inventory view (tests/support/inventory.py)."""
    return fill_inventory(db, database_url)


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    yield await aiohttp_client(create_app(settings))
