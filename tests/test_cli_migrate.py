"""`collector-hub migrate` applies pending migrations once and says what it did."""

from __future__ import annotations

import subprocess
import sys

import psycopg2
import psycopg2.extensions

from server.db.database import migration_files


def run_migrate(dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "migrate", "--database-url", dsn],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_applies_each_file_once(admin_dsn):
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS test_cli_migrate WITH (FORCE)")
        cur.execute("CREATE DATABASE test_cli_migrate")
    dsn = psycopg2.extensions.make_dsn(admin_dsn, dbname="test_cli_migrate")
    try:
        first = run_migrate(dsn)
        assert first.returncode == 0, first.stderr
        count = len(migration_files())
        assert f"applied {count} migration(s): 001_runs.sql" in first.stdout
        second = run_migrate(dsn)
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == "applied 0 migration(s)"
        conn = psycopg2.connect(dsn)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM collector_hub_migrations")
            assert cur.fetchone()[0] == count
        conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS test_cli_migrate WITH (FORCE)")
        admin.close()


def test_migrate_with_a_bad_url_fails_clearly():
    result = run_migrate("mysql://nope")
    assert result.returncode == 2
    assert "COLLECTOR_HUB_DATABASE_URL" in result.stderr or "--database-url" in result.stderr
    assert "Traceback" not in result.stderr
