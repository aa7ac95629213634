"""Invariants kept in SQL, whoever writes: seq, terminal finality, batch aggregates."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from server.db.database import MIGRATION_LOCK_ID, apply_migrations, serving_database
from server.package_data import SQL_DIR
from tests.support.database import execute, fetch
from tests.support.runs import new_batch


@pytest.mark.parametrize("final", ["completed", "failed", "cancelled"])
def test_terminal_jobs_cannot_change_even_from_raw_sql(db, final):
    _, (job, _) = new_batch(db)
    with db.cursor() as cur:
        cur.execute("UPDATE job_runs SET status = %s WHERE job_id = %s", (final, job))
    before = fetch(db, "SELECT status, message, seq FROM job_runs WHERE job_id = %s", job)
    for change in ("status = 'running'", "message = 'late'", "progress_percent = 3", "status = 'queued'"):
        with pytest.raises(psycopg2.Error) as caught, db.cursor() as cur:
            cur.execute(f"UPDATE job_runs SET {change} WHERE job_id = %s", (job,))
        assert caught.value.pgcode == "CH001"
        assert "terminal states are final" in caught.value.pgerror
    assert fetch(db, "SELECT status, message, seq FROM job_runs WHERE job_id = %s", job) == before


def test_every_change_bumps_seq_on_job_and_batch(db):
    _batch, (job, _) = new_batch(db)
    seqs = []
    for percent in (10, 20, 30):
        with db.cursor() as cur:
            cur.execute("UPDATE job_runs SET status='running', progress_percent=%s WHERE job_id=%s", (percent, job))
        seqs.append(
            fetch(db, "SELECT j.seq, b.seq FROM job_runs j JOIN job_batches b USING (batch_id) WHERE job_id = %s", job)
        )
    flat = [s for pair in seqs for s in pair]
    assert flat == sorted(flat) and len(set(flat)) == len(flat)
    for job_seq, batch_seq in seqs:
        assert batch_seq > job_seq  # the batch row is rewritten after its job


def test_a_job_cannot_move_to_another_batch(db):
    _, (job, _) = new_batch(db)
    other, _ = new_batch(db)
    with pytest.raises(psycopg2.Error), db.cursor() as cur:
        cur.execute("UPDATE job_runs SET batch_id = %s WHERE job_id = %s", (other, job))


def test_concurrent_writers_leave_consistent_aggregates(database_url, db):
    """Two transactions finishing two jobs of one batch at the same time: the batch must end
    completed with 100 %, whichever commits last."""
    for _ in range(10):
        batch, jobs = new_batch(db)
        barrier = threading.Barrier(len(jobs))
        errors: list[BaseException] = []

        def finish(job_id, barrier=barrier, errors=errors):
            conn = psycopg2.connect(database_url)
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    barrier.wait()
                    cur.execute("UPDATE job_runs SET status = 'completed' WHERE job_id = %s", (job_id,))
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                conn.close()

        threads = [threading.Thread(target=finish, args=(job,)) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert fetch(db, "SELECT status, progress_percent FROM job_batches WHERE batch_id = %s", batch) == (
            "completed",
            100,
        )


@contextlib.contextmanager
def empty_database(admin_dsn: str, name: str) -> Iterator[str]:
    """A database with no table at all (never migrated), dropped afterwards: its DSN."""
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {name}")
        yield psycopg2.extensions.make_dsn(admin_dsn, dbname=name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_migrations_apply_once_even_when_nodes_start_together(admin_dsn: str) -> None:
    results: list[list[str]] = []
    errors: list[Exception] = []

    def run() -> None:
        try:
            results.append(apply_migrations(dsn))
        except Exception as exc:
            errors.append(exc)

    with empty_database(admin_dsn, "test_concurrent_migrations") as dsn:
        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        applied = sorted(f for files in results for f in files)
        assert applied == sorted(p.name for p in SQL_DIR.glob("*.sql"))  # each file exactly once


async def test_a_start_with_no_migration_pending_needs_neither_the_lock_nor_a_connection_of_its_own(
    database_url: str, db, tmp_path: Path
) -> None:
    """A process starting on a database that has every migration opens only its pool (one
    connection here), and does not wait for the migration lock another node holds while it
    applies migrations this one does not know."""
    await execute(db, "SELECT pg_advisory_lock(%s)", MIGRATION_LOCK_ID)
    try:

        async def start() -> int:
            async with serving_database(database_url, tmp_path, 1, 1) as (_, pool):
                return int(pool.size)

        assert await asyncio.wait_for(start(), 30) == 1
    finally:
        await execute(db, "SELECT pg_advisory_unlock(%s)", MIGRATION_LOCK_ID)


async def test_a_start_on_a_database_never_migrated_applies_every_migration(admin_dsn: str, tmp_path: Path) -> None:
    with empty_database(admin_dsn, "test_start_migrates") as dsn:
        async with serving_database(dsn, tmp_path, 1, 1):
            pass
        conn = psycopg2.connect(dsn)
        try:
            assert fetch(conn, "SELECT count(*) FROM collector_hub_migrations") == (len(list(SQL_DIR.glob("*.sql"))),)
        finally:
            conn.close()
