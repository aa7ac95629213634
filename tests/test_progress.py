"""Progress from collector code: update_job_progress, and the stdout line protocol."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg2.extras
import pytest

from collectors import progress
from collectors.progress import ProgressError, update_job_progress
from server.runner.protocol import LineSplitter, StdoutProgress, parse_progress_line
from server.runner.throttle import ConflatingWriter

BATCH = "bc_00000001"
QUEUED, RUNNING, DONE = "de_00000001", "de_00000002", "de_00000003"


@pytest.fixture(autouse=True)
def jobs(db, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """A batch with a queued, a running and a completed job; the progress API pointed at it."""
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches")
        cur.execute("INSERT INTO job_batches (batch_id) VALUES (%s)", (BATCH,))
        for job_id in (QUEUED, RUNNING, DONE):
            cur.execute(
                "INSERT INTO job_runs (job_id, batch_id, collector, job_name)"
                " VALUES (%s, %s, 'demo', 'demo-collector')",
                (job_id, BATCH),
            )
        cur.execute("UPDATE job_runs SET status = 'running' WHERE job_id = %s", (RUNNING,))
        cur.execute("UPDATE job_runs SET status = 'completed' WHERE job_id = %s", (DONE,))
    monkeypatch.setenv("COLLECTOR_HUB_DATABASE_URL", database_url)
    monkeypatch.delenv("COLLECTOR_HUB_JOB_ID", raising=False)
    yield
    progress.close_connection()


def row(db, job_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM job_runs WHERE job_id = %s", (job_id,))
        return dict(cur.fetchone())


def all_seqs(db) -> list[int]:  # type: ignore[no-untyped-def]
    with db.cursor() as cur:
        cur.execute("SELECT seq FROM job_runs UNION ALL SELECT seq FROM job_batches ORDER BY 1")
        return [r[0] for r in cur.fetchall()]


def test_an_update_is_written_with_last_progress_at(db) -> None:  # type: ignore[no-untyped-def]
    update_job_progress(RUNNING, "running", 50, "Processing devices...")
    job = row(db, RUNNING)
    assert (job["status"], job["progress_percent"], job["message"]) == ("running", 50, "Processing devices...")
    assert job["last_progress_at"] is not None
    update_job_progress(RUNNING, "running", None, "Still going")  # None keeps the percent
    assert (row(db, RUNNING)["progress_percent"], row(db, RUNNING)["message"]) == (50, "Still going")


def test_a_queued_job_can_start_running_and_complete(db) -> None:  # type: ignore[no-untyped-def]
    update_job_progress(QUEUED, "running", 10, "Starting")
    assert row(db, QUEUED)["run_started_at"] is not None
    update_job_progress(QUEUED, "completed", 100, "Collection completed")
    job = row(db, QUEUED)
    assert job["status"] == "completed" and job["ended_at"] is not None


def test_the_job_id_defaults_to_the_environment(db, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLLECTOR_HUB_JOB_ID", RUNNING)
    update_job_progress(None, "running", 70, "From the environment")
    assert row(db, RUNNING)["progress_percent"] == 70


def test_a_failed_report_without_an_error_uses_its_message(db) -> None:  # type: ignore[no-untyped-def]
    update_job_progress(RUNNING, "failed", None, "API returned 401")
    job = row(db, RUNNING)
    assert (job["status"], job["error"]) == ("failed", "API returned 401")


def test_the_connection_is_reused(db) -> None:  # type: ignore[no-untyped-def]
    update_job_progress(RUNNING, "running", 1, "one")
    first = progress._connection._conn
    update_job_progress(RUNNING, "running", 2, "two")
    assert progress._connection._conn is first


def test_a_broken_connection_is_replaced(db) -> None:  # type: ignore[no-untyped-def]
    update_job_progress(RUNNING, "running", 1, "one")
    backend = progress._connection._conn.get_backend_pid()
    with db.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (backend,))
    update_job_progress(RUNNING, "running", 2, "after the server dropped us")
    assert row(db, RUNNING)["progress_percent"] == 2


BAD_UPDATES = [
    ((RUNNING, "queued", 5, "x"), "status must be one of"),
    ((RUNNING, "done", 5, "x"), "status must be one of"),
    ((RUNNING, "running", 101, "x"), "percent must be an integer from 0 to 100"),
    ((RUNNING, "running", -1, "x"), "percent must be an integer from 0 to 100"),
    ((RUNNING, "running", 50.5, "x"), "percent must be an integer"),
    ((RUNNING, "running", True, "x"), "percent must be an integer"),
    ((RUNNING, "running", "50", "x"), "percent must be an integer"),
    ((RUNNING, "running", 5, "x" * 1001), "at most 1000 characters"),
    ((RUNNING, "running", 5, "a\x00b"), "NUL"),
    ((RUNNING, "running", 5, "\ud800"), "lone surrogates"),
    ((RUNNING, "running", 5, 42), "message must be a string"),
    (("de_99999999", "running", 5, "x"), "unknown job de_99999999"),
    (("nonsense", "running", 5, "x"), "malformed job id"),
    ((None, "running", 5, "x"), "COLLECTOR_HUB_JOB_ID is not set"),
    ((DONE, "running", 5, "x"), "already completed; terminal states are final"),
    ((DONE, "failed", None, "x"), "already completed; terminal states are final"),
]


@pytest.mark.parametrize(("args", "complaint"), BAD_UPDATES)
def test_invalid_updates_raise_and_write_nothing(db, args: tuple[Any, ...], complaint: str) -> None:  # type: ignore[no-untyped-def]
    before = all_seqs(db)
    with pytest.raises(ProgressError, match=complaint.replace("(", r"\(")) as raised:
        update_job_progress(*args)
    assert isinstance(raised.value, ValueError)
    assert all_seqs(db) == before


def test_an_error_that_is_too_long_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    before = all_seqs(db)
    with pytest.raises(ProgressError, match="error must be at most 4000"):
        update_job_progress(RUNNING, "failed", None, "boom", error="e" * 4001)
    assert all_seqs(db) == before


def test_without_a_database_url_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLLECTOR_HUB_DATABASE_URL")
    with pytest.raises(ProgressError, match="COLLECTOR_HUB_DATABASE_URL is not set"):
        update_job_progress(RUNNING, "running", 1, "x")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("@progress 50 Processing devices", StdoutProgress(50, "Processing devices")),
        ("@progress 50", StdoutProgress(50, None)),
        ("@progress 0 Starting", StdoutProgress(0, "Starting")),
        ("@progress - Connecting", StdoutProgress(None, "Connecting")),
        ("@progress   100   Done  ", StdoutProgress(100, "Done")),
        ("@progress\t7 tab\tand\x00nul", StdoutProgress(7, "tab and nul")),
        ('@progress {"percent": 50, "message": "JSON"}', StdoutProgress(50, "JSON")),
        ('@progress {"message": "only text"}', StdoutProgress(None, "only text")),
        ("@progress 5 " + "m" * 2000, StdoutProgress(5, "m" * 999 + "…")),
        ("@progress 101 too much", None),
        ("@progress -5 negative", None),
        ("@progress -", None),
        ("@progress", None),
        ("@progress fifty", None),
        ("@progressive 5", None),
        ("progress 5", None),
        ("  @progress 5 indented", None),
        ('@progress {"percent": "50"}', None),
        ('@progress {"percent": true}', None),
        ('@progress {"percent": 50, "status": "completed"}', None),
        ('@progress {"percent": 50, "message": 7}', None),
        ("@progress {broken", None),
        ("@progress [1, 2]", None),
        ("@progress " + "[" * 100_000, None),
        ("@progress " + "{" * 100_000, None),
    ],
)
def test_stdout_progress_lines(line: str, expected: StdoutProgress | None) -> None:
    assert parse_progress_line(line) == expected


def test_the_line_splitter_bounds_memory_and_survives_bad_bytes() -> None:
    splitter = LineSplitter(max_line_bytes=10)
    assert splitter.feed(b"one\ntw") == ["one"]
    assert splitter.feed(b"o\r\n") == ["two"]
    assert splitter.feed(b"x" * 8) == []
    assert splitter.feed(b"x" * 8) == []  # over the bound: dropped, not buffered
    assert splitter.feed(b"xx\nok\n\xff\n") == ["ok", "\ufffd"]
    assert splitter.feed(b"tail") == []
    assert splitter.finish() == ["tail"]
    assert splitter.finish() == []


async def test_the_conflating_writer_bounds_writes_and_always_writes_the_last() -> None:
    written: list[StdoutProgress] = []

    async def write(report: StdoutProgress) -> bool:
        written.append(report)
        return True

    writer = ConflatingWriter(write, min_interval=0.2)
    for n in range(1000):
        writer.submit(StdoutProgress(n % 100, None))
        if n % 100 == 0:
            await asyncio.sleep(0)
    writer.submit(StdoutProgress(None, "last words"))
    await writer.close()
    assert len(written) <= 3
    assert written[-1] == StdoutProgress(99, "last words")  # merged with the unsent percent


async def test_the_conflating_writer_stops_once_the_job_has_ended() -> None:
    calls = 0

    async def write(report: StdoutProgress) -> bool:
        nonlocal calls
        calls += 1
        return False

    writer = ConflatingWriter(write, min_interval=0.0)
    writer.submit(StdoutProgress(1, None))
    await asyncio.sleep(0.01)
    writer.submit(StdoutProgress(2, None))
    await writer.close()
    assert calls == 1


def progress_cli(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_")}
    if database_url:
        env["COLLECTOR_HUB_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "server", "progress", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_progress_command_records_an_update(db, database_url: str) -> None:  # type: ignore[no-untyped-def]
    result = progress_cli(RUNNING, "running", "42", "From a shell script", database_url=database_url)
    assert result.returncode == 0, result.stderr
    job = row(db, RUNNING)
    assert (job["progress_percent"], job["message"]) == (42, "From a shell script")
    assert progress_cli(RUNNING, "running", "-", "No percent", database_url=database_url).returncode == 0
    assert (row(db, RUNNING)["progress_percent"], row(db, RUNNING)["message"]) == (42, "No percent")
    result = progress_cli(
        RUNNING, "failed", "-", "Gave up", "--error", "HTTP 500 from the API", database_url=database_url
    )
    assert result.returncode == 0, result.stderr
    assert (row(db, RUNNING)["status"], row(db, RUNNING)["error"]) == ("failed", "HTTP 500 from the API")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ((RUNNING, "running", "fifty", "x"), "PERCENT must be an integer from 0 to 100, or '-'"),
        # A shell user writes '-' for "no percent"; Python's None means nothing to them.
        ((RUNNING, "running", "500", "x"), "PERCENT must be an integer from 0 to 100, or '-' to keep the current one"),
        ((RUNNING, "running", "None", "x"), "or '-' to keep the current one; got 'None'"),
        ((RUNNING, "paused", "5", "x"), "status must be one of running, completed, failed, cancelled"),
        ((DONE, "running", "5", "x"), "already completed; terminal states are final"),
        (("de_99999999", "running", "5", "x"), "unknown job"),
        (("DROP TABLE", "running", "5", "x"), "malformed job id"),
    ],
)
def test_the_progress_command_refuses_bad_input_and_writes_nothing(
    db,
    database_url: str,
    args: tuple[str, ...],
    complaint: str,  # type: ignore[no-untyped-def]
) -> None:
    before = all_seqs(db)
    result = progress_cli(*args, database_url=database_url)
    assert result.returncode == 2
    assert complaint in result.stderr and "nothing was recorded" in result.stderr
    assert "None" not in result.stderr.replace("got 'None'", "")
    assert "Traceback" not in result.stderr
    assert all_seqs(db) == before


def test_the_progress_command_outside_a_job_exits_1_as_documented() -> None:
    """docs/COLLECTORS.md: 1 when it cannot be recorded where it runs (2 is for bad input)."""
    result = progress_cli(RUNNING, "running", "5", "x")
    assert result.returncode == 1 and "COLLECTOR_HUB_DATABASE_URL is not set" in result.stderr
    assert "outside a job" in result.stderr
    result = progress_cli("", "running", "5", "x", database_url="postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 1 and "COLLECTOR_HUB_JOB_ID is not set" in result.stderr


def test_the_progress_command_without_a_database_says_so() -> None:
    result = progress_cli(RUNNING, "running", "5", "x", database_url="postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 1 and "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr
