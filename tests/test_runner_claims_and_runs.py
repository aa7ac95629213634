"""The collector runtime: real runners claiming from PostgreSQL and running real processes."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import psycopg2.extras
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.runner.keys import RUNNER
from server.settings import Settings
from tests.support.collectors_file import program, write_collectors_file
from tests.support.conditions import eventually
from tests.support.database import execute
from tests.support.processes import process_alive, read_pids
from tests.support.run_shapes import BATCH_FIELDS, BATCH_JOB_FIELDS
from tests.support.runner import started_runner
from tests.support.runs import trigger
from tests.support.settings import replace_settings


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@pytest.fixture(autouse=True)
def empty_queue(db) -> None:  # type: ignore[no-untyped-def]
    """Each test starts with no runs, so no runner picks up another test's leftovers."""
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches")


@pytest.fixture
def runner_settings(settings: Settings, tmp_path: Path) -> Settings:
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "demo": {
                "command": [sys.executable, "-m", "collectors.demo"],
                "env": {"DEMO_PAGES": "5", "DEMO_PAGE_SECONDS": "0.25"},
            },
            "quiet": {"command": program("quiet_ok")},
            "crash": {"command": program("crash")},
            "hang": {"command": program("hang"), "env": {"PID_FILE": str(tmp_path / "hang.pids")}, "timeout": 1.5},
            "stubborn": {
                "command": program("hang"),
                "env": {"PID_FILE": str(tmp_path / "stubborn.pids"), "IGNORE_TERM": "1"},
            },
            "garbage": {"command": program("garbage"), "env": {"RELEASE_FILE": str(tmp_path / "release")}},
            "flood": {"command": program("flood")},
            "silent": {"command": program("silent"), "env": {"PID_FILE": str(tmp_path / "silent.pids")}},
            "selfdone": {"command": program("self_report"), "env": {"FINAL_STATUS": "completed", "EXIT_CODE": "5"}},
            "selffail": {"command": program("self_report"), "env": {"FINAL_STATUS": "failed", "EXIT_CODE": "0"}},
            "missing": {"command": [str(tmp_path / "no-such-program")]},
            "killed": {"command": ["/bin/sh", "-c", "echo about to die >&2; kill -KILL $$"]},
        },
    )
    return replace_settings(
        settings,
        run_collectors=True,
        runner_poll_interval=0.1,
        cancel_grace_period=0.5,
        collectors_file=collectors,
        runner_id="test-runner",
    )


AppFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def runner_client(aiohttp_client, runner_settings: Settings) -> AppFactory:  # type: ignore[no-untyped-def]
    async def make(**changes: Any) -> TestClient:
        return await aiohttp_client(create_app(replace_settings(runner_settings, **changes)))

    return make


async def get_job(client: TestClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/collectors/runs/job/{job_id}")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def job_ended(client: TestClient, job_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        job = await get_job(client, job_id)
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    return await eventually(probe, timeout=20, what=f"job {job_id} to end")


def job_row(db, job_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM job_runs WHERE job_id = %s", (job_id,))
        return dict(cur.fetchone())


async def test_demo_runs_to_completed_with_rising_progress(runner_client: AppFactory, db) -> None:  # type: ignore[no-untyped-def]
    client = await runner_client()
    created = await trigger(client, "demo")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    seen: list[tuple[int | None, str | None]] = []

    async def probe() -> dict[str, Any] | None:
        batch = await (await client.get(f"/api/collectors/runs/batch/{batch_id}")).json()
        job = batch["collectors"][0]
        if job["status"] == "running":
            seen.append((job["progress_percent"], job["message"]))
        return batch if batch["status"] == "completed" else None

    batch = await eventually(probe, timeout=20, interval=0.05, what="the demo batch to complete")
    percents = [p for p, _ in seen if p is not None]
    assert percents == sorted(percents), percents
    assert len({p for p in percents if 0 < p < 100}) >= 2, seen
    assert any(m and m.startswith("Processing page ") and m.endswith("/5") for _, m in seen), seen
    assert set(batch) >= BATCH_FIELDS
    assert batch["progress_percent"] == 100 and batch["duration_seconds"] is not None
    job = batch["collectors"][0]
    assert set(job) >= BATCH_JOB_FIELDS
    assert job["progress_percent"] == 100 and job["ended_at"] and job["error"] is None
    assert job["message"] == "Demo collection completed: 5 pages"
    row = job_row(db, job_id)
    assert row["runner_id"] == "test-runner" and row["host"] == socket.gethostname()
    assert row["pid"] and row["run_started_at"] and row["last_progress_at"]
    assert row["exit_code"] is None  # the demo ended its own job; a terminal row is final


async def full_log(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    """The job's log once the runner has stored its end note (a collector that ends its own job,
    like the demo, exits just after: the note follows the job's end)."""

    async def probe() -> list[dict[str, Any]] | None:
        # Ask the runner first, then read: a read started after the runner let go of the job
        # sees every line (read the other way round, the lines could predate its last write).
        if job_id in client.app[RUNNER].running_job_ids:
            return None
        body = await (await client.get(f"/api/collectors/runs/job/{job_id}/logs?limit=5000")).json()
        lines: list[dict[str, Any]] = body["lines"]
        return lines or None

    return await eventually(probe, what=f"the log of {job_id} to be stored to its end")


async def test_the_demos_log_says_what_it_did_between_the_runners_notes(runner_client: AppFactory, db) -> None:  # type: ignore[no-untyped-def]
    """The README's first collector: its log is what `collector-hub logs` and the run page show."""
    client = await runner_client()
    job_id = (await trigger(client, "demo"))["collectors"][0]["job_id"]
    await job_ended(client, job_id)
    lines = await full_log(client, job_id)
    first, last = lines[0], lines[-1]
    pid = job_row(db, job_id)["pid"]
    assert first["stream"] == "system"
    assert (
        first["text"]
        == f"Runner test-runner started pid {pid}: {shlex.join([sys.executable, '-m', 'collectors.demo'])}"
    )
    assert [line["text"] for line in lines[1:-1] if line["stream"] == "stdout"] == [
        "demo: collecting 5 pages, 0.25 s each",
        *(f"demo: fetched page {n}/5" for n in range(1, 6)),
        "demo: done, 5 pages collected",
    ]
    assert last["stream"] == "system" and re.fullmatch(r"Collector exited with code 0 after \d+\.\d s", last["text"])
    assert 1.0 <= float(last["text"].split()[-2]) < 20  # five pages of 0.25 s


@pytest.mark.parametrize(
    ("collector", "end"),
    [
        ("crash", r"Collector exited with code 3 after \d+\.\d s"),
        ("killed", r"Collector killed by SIGKILL after \d+\.\d s"),
        ("hang", r"Stopped because the collector's timeout passed: collector killed by SIGTERM after \d+\.\d s"),
        ("missing", r"Runner test-runner: Could not start the collector: cannot start '.*no-such-program': .+"),
    ],
)
async def test_every_log_starts_and_ends_with_a_runner_note(
    runner_client: AppFactory, collector: str, end: str
) -> None:
    client = await runner_client()
    job_id = (await trigger(client, collector))["collectors"][0]["job_id"]
    await job_ended(client, job_id)
    lines = await full_log(client, job_id)
    assert lines[-1]["stream"] == "system" and re.fullmatch(end, lines[-1]["text"]), lines[-1]
    if collector == "hang":
        # Not stopped before its timeout (1.5 s); how long SIGTERM then takes depends on the
        # machine's load (2.0 s was seen on a loaded one), so no upper bound.
        assert float(lines[-1]["text"].split()[-2]) >= 1.5, lines[-1]
    if collector == "missing":  # no process, so no start note: the end note names the runner
        assert len(lines) == 1
    else:
        assert lines[0]["stream"] == "system" and lines[0]["text"].startswith("Runner test-runner started pid ")


async def test_exit_zero_without_a_report_completes_with_exit_code(runner_client: AppFactory, db) -> None:  # type: ignore[no-untyped-def]
    client = await runner_client()
    job_id = (await trigger(client, "quiet"))["collectors"][0]["job_id"]
    job = await job_ended(client, job_id)
    assert job["status"] == "completed" and job["progress_percent"] == 100
    assert job_row(db, job_id)["exit_code"] == 0


async def test_a_crash_fails_with_exit_code_and_stderr_tail(runner_client: AppFactory, db) -> None:  # type: ignore[no-untyped-def]
    client = await runner_client()
    job_id = (await trigger(client, "crash"))["collectors"][0]["job_id"]
    job = await job_ended(client, job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith("Exited with code 3")
    assert "crash line 30" in job["error"] and "crash line 11" in job["error"]
    assert "crash line 10\n" not in job["error"]  # only the last 20 lines
    assert job_row(db, job_id)["exit_code"] == 3


async def test_a_collector_killed_by_a_signal_fails_saying_which(runner_client: AppFactory, db) -> None:  # type: ignore[no-untyped-def]
    client = await runner_client()
    job_id = (await trigger(client, "killed"))["collectors"][0]["job_id"]
    job = await job_ended(client, job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith("Killed by signal SIGKILL (9)") and "about to die" in job["error"]
    assert job_row(db, job_id)["exit_code"] == -9


async def test_a_program_that_cannot_start_fails_clearly(runner_client: AppFactory) -> None:
    client = await runner_client()
    job_id = (await trigger(client, "missing"))["collectors"][0]["job_id"]
    job = await job_ended(client, job_id)
    assert job["status"] == "failed"
    assert "Could not start the collector" in job["error"] and "no-such-program" in job["error"]


@pytest.mark.parametrize(
    ("collector", "status", "message"),
    [("selfdone", "completed", "Reported completed by the collector"), ("selffail", "failed", None)],
)
async def test_a_collectors_own_final_report_is_kept_whatever_it_exits_with(
    runner_client: AppFactory,
    db,
    collector: str,
    status: str,
    message: str | None,  # type: ignore[no-untyped-def]
) -> None:
    client = await runner_client()
    job_id = (await trigger(client, collector))["collectors"][0]["job_id"]
    job = await job_ended(client, job_id)

    async def process_done() -> bool:
        return job_id not in client.app[RUNNER].running_job_ids

    await eventually(process_done, what="the process to be reaped")
    job = await get_job(client, job_id)
    assert job["status"] == status
    assert job["message"] == "Reported failed by the collector" if status == "failed" else message
    if status == "failed":
        assert job["error"] == "Reported failed by the collector"
    assert job_row(db, job_id)["exit_code"] is None


async def test_a_hanging_collector_times_out_and_its_whole_tree_dies(
    runner_client: AppFactory,
    tmp_path: Path,
    db,  # type: ignore[no-untyped-def]
) -> None:
    client = await runner_client()
    job_id = (await trigger(client, "hang"))["collectors"][0]["job_id"]
    pid_file = tmp_path / "hang.pids"
    pids = await eventually(lambda: _async(read_pids(pid_file)), what="the hang program to start")
    job = await job_ended(client, job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith("Timed out after 1.5 seconds")
    assert job_row(db, job_id)["exit_code"] == -signal.SIGTERM
    for pid in pids:  # the program and the child it spawned
        await eventually(lambda pid=pid: _async(not process_alive(pid)), timeout=5, what=f"pid {pid} to be gone")  # type: ignore[misc]


async def _async(value: Any) -> Any:
    return value


async def test_garbage_on_stdout_is_ignored_and_progress_lines_are_read(
    runner_client: AppFactory, tmp_path: Path
) -> None:
    client = await runner_client()
    job_id = (await trigger(client, "garbage"))["collectors"][0]["job_id"]

    async def reported() -> dict[str, Any] | None:
        job = await get_job(client, job_id)
        return job if job["progress_percent"] == 70 else None

    job = await eventually(reported, what="the last progress line to be recorded")
    assert job["status"] == "running"
    assert job["message"] == "Sixty via JSON"  # "@progress 70" has no message: the last one stays
    (tmp_path / "release").touch()
    job = await job_ended(client, job_id)
    assert job["status"] == "completed" and job["error"] is None


async def test_a_flood_of_progress_lines_is_conflated(runner_client: AppFactory, db) -> None:  # type: ignore[no-untyped-def]
    client = await runner_client()
    job_id = (await trigger(client, "flood"))["collectors"][0]["job_id"]
    seq_before = job_row(db, job_id)["seq"]
    await job_ended(client, job_id)

    async def process_done() -> bool:
        return job_id not in client.app[RUNNER].running_job_ids

    await eventually(process_done, what="the runner to finish the job")
    row = job_row(db, job_id)
    assert row["status"] == "completed"
    # 20001 lines, but each write bumps seq by one: a handful of writes, not thousands.
    assert row["seq"] - seq_before < 60, row["seq"] - seq_before


async def test_the_watchdog_fails_a_silent_job_and_its_process_stops(
    runner_client: AppFactory,
    tmp_path: Path,
    db,  # type: ignore[no-untyped-def]
) -> None:
    client = await runner_client(watchdog_timeout=1.0)
    job_id = (await trigger(client, "silent"))["collectors"][0]["job_id"]
    pids = await eventually(lambda: _async(read_pids(tmp_path / "silent.pids")), what="the silent program to start")
    job = await job_ended(client, job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith("No progress reported for 1 seconds")
    assert job["message"] == "Stopped by the watchdog"
    await eventually(lambda: _async(not process_alive(pids[0])), timeout=5, what="the silent process to be killed")
    assert job_row(db, job_id)["status"] == "failed"  # the exit did not overwrite it


async def test_the_watchdog_covers_jobs_of_runners_that_died_elsewhere(runner_client: AppFactory, db) -> None:  # type: ignore[no-untyped-def]
    client = await runner_client(run_collectors=False)
    ghost, fresh = (await trigger(client, "quiet", "crash"))["collectors"]
    await execute(
        db,
        "UPDATE job_runs SET status = 'running', runner_id = 'elsewhere:1', host = 'elsewhere',"
        " run_started_at = now() - interval '1 hour' WHERE job_id = %s",
        ghost["job_id"],
    )
    await execute(
        db,
        "UPDATE job_runs SET status = 'running', runner_id = 'elsewhere:1', host = 'elsewhere' WHERE job_id = %s",
        fresh["job_id"],
    )
    other = await runner_client(runner_id="watcher", watchdog_timeout=60.0)
    job = await job_ended(other, ghost["job_id"])
    assert job["status"] == "failed" and "No progress reported for 60 seconds" in job["error"]
    assert job_row(db, fresh["job_id"])["status"] == "running"


async def test_cancelling_a_running_job_kills_its_process_and_stays_cancelled(
    runner_client: AppFactory,
    tmp_path: Path,
    db,  # type: ignore[no-untyped-def]
) -> None:
    client = await runner_client()
    job_id = (await trigger(client, "stubborn"))["collectors"][0]["job_id"]  # ignores SIGTERM
    pids = await eventually(lambda: _async(read_pids(tmp_path / "stubborn.pids")), what="the program to start")
    response = await client.post(f"/api/collectors/runs/job/{job_id}/cancel")
    assert response.status == 200
    for pid in pids:
        await eventually(lambda pid=pid: _async(not process_alive(pid)), timeout=5, what=f"pid {pid} to be gone")  # type: ignore[misc]

    async def process_done() -> bool:
        return job_id not in client.app[RUNNER].running_job_ids

    await eventually(process_done, what="the runner to let go of the job")
    row = job_row(db, job_id)
    assert row["status"] == "cancelled" and row["message"] == "Cancelled by request"
    assert row["exit_code"] is None and row["error"] is None


async def test_a_cancel_stops_the_process_at_once_not_at_the_next_poll(
    runner_client: AppFactory,
    tmp_path: Path,
) -> None:
    """The cancel's NOTIFY wakes the runner that runs the job: its process is stopped well before
    the runner would poll again (a minute), and the program has no timeout of its own."""
    client = await runner_client(runner_poll_interval=60.0)
    job_id = (await trigger(client, "stubborn"))["collectors"][0]["job_id"]
    pids = await eventually(lambda: _async(read_pids(tmp_path / "stubborn.pids")), what="the program to start")
    assert (await client.post(f"/api/collectors/runs/job/{job_id}/cancel")).status == 200
    for pid in pids:
        await eventually(lambda pid=pid: _async(not process_alive(pid)), timeout=10, what=f"pid {pid} to be gone")  # type: ignore[misc]
    await eventually(
        lambda: _async(job_id not in client.app[RUNNER].running_job_ids), what="the runner to let go of the job"
    )


def record_registry(tmp_path: Path, sleep: str = "0") -> tuple[Path, Path]:
    record = tmp_path / "runs.txt"
    path = write_collectors_file(
        tmp_path / "record.toml",
        {"record": {"command": program("record_run"), "env": {"RECORD_FILE": str(record), "RECORD_SLEEP": sleep}}},
    )
    return path, record


def max_overlap(intervals: list[tuple[Any, Any]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


async def test_two_runners_start_each_job_exactly_once(
    runner_client: AppFactory,
    runner_settings: Settings,
    database_url: str,
    tmp_path: Path,
    db,  # type: ignore[no-untyped-def]
) -> None:
    collectors, record = record_registry(tmp_path, sleep="0.15")
    api = await runner_client(run_collectors=False, collectors_file=collectors)
    job_ids = [(await trigger(api, "record"))["collectors"][0]["job_id"] for _ in range(20)]
    base = replace_settings(runner_settings, collectors_file=collectors, runner_concurrency=3)

    async def all_completed() -> bool:
        with db.cursor() as cur:
            cur.execute("SELECT count(*) FROM job_runs WHERE status = 'completed'")
            return bool(cur.fetchone()[0] == 20)

    async with AsyncExitStack() as runners:
        for runner_id in ("runner-a", "runner-b"):
            await runners.enter_async_context(started_runner(base, database_url, runner_id=runner_id))
        await eventually(all_completed, timeout=60, what="all 20 jobs to complete")
    runs = Counter(line.split()[0] for line in record.read_text().splitlines())
    assert sorted(runs) == sorted(job_ids) and set(runs.values()) == {1}, runs
    with db.cursor() as cur:
        cur.execute("SELECT runner_id, run_started_at, ended_at FROM job_runs")
        rows = cur.fetchall()
    by_runner: dict[str, list[tuple[Any, Any]]] = {}
    for runner_id, started, ended in rows:
        by_runner.setdefault(runner_id, []).append((started, ended))
    assert set(by_runner) == {"runner-a", "runner-b"}, {k: len(v) for k, v in by_runner.items()}
    assert all(max_overlap(intervals) <= 3 for intervals in by_runner.values())


async def test_claims_follow_priority_then_age(
    runner_client: AppFactory, runner_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    collectors, record = record_registry(tmp_path)
    api = await runner_client(run_collectors=False, collectors_file=collectors)
    order = {}
    for label, priority in [("low", "low"), ("normal-1", "normal"), ("high", "high"), ("normal-2", "normal")]:
        order[(await trigger(api, "record", priority=priority))["collectors"][0]["job_id"]] = label
    one_at_a_time = replace_settings(runner_settings, collectors_file=collectors, runner_concurrency=1)
    async with started_runner(one_at_a_time, database_url):
        await eventually(
            lambda: _async(record.exists() and len(record.read_text().splitlines()) == 4), what="four runs"
        )
    ran = [order[line.split()[0]] for line in record.read_text().splitlines()]
    assert ran == ["high", "normal-1", "normal-2", "low"]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_a_starting_runner_settles_what_a_dead_runner_left_running(
    runner_client: AppFactory,
    runner_settings: Settings,
    database_url: str,
    db,  # type: ignore[no-untyped-def]
) -> None:
    api = await runner_client(run_collectors=False)
    mine, dead_local, zombie_local, live_local, custom = (
        job["job_id"] for job in (await trigger(api, "quiet", "crash", "flood", "demo", "garbage"))["collectors"]
    )
    host = socket.gethostname()
    # A runner that died but whose parent has not reaped it yet: a zombie is no live runner.
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: ASYNC220 (returns at once)
    await eventually(lambda: _async(is_zombie(zombie.pid)), what="a zombie process")
    # A collector process the dead runner left behind, still running, in its own session.
    orphan = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import time; time.sleep(60)",
        env={**os.environ, "COLLECTOR_HUB_JOB_ID": dead_local},
        start_new_session=True,
    )
    try:
        with db.cursor() as cur:
            running = "UPDATE job_runs SET status = 'running', runner_id = %s, host = %s, pid = %s WHERE job_id = %s"
            cur.execute(running, ("test-runner", host, None, mine))
            cur.execute(running, (f"{host}:{dead_pid()}", host, orphan.pid, dead_local))
            cur.execute(running, (f"{host}:{zombie.pid}", host, None, zombie_local))
            cur.execute(running, (f"{host}:{os.getpid()}", host, None, live_local))
            cur.execute(running, ("custom-id", host, None, custom))
        async with started_runner(runner_settings, database_url, runner_id="test-runner"):
            pass  # settling happens in start()
        assert await asyncio.wait_for(orphan.wait(), 5) == -signal.SIGKILL
    finally:
        zombie.wait()
        if orphan.returncode is None:
            orphan.kill()
            await orphan.wait()
    assert job_row(db, mine)["status"] == "failed"
    assert job_row(db, mine)["error"].startswith("Runner test-runner restarted while the job was running")
    assert job_row(db, dead_local)["status"] == "failed"
    assert "stopped unexpectedly" in job_row(db, dead_local)["error"]
    assert job_row(db, zombie_local)["status"] == "failed"
    # A live runner's job, and one of a runner whose liveness the id does not tell, stay.
    assert job_row(db, live_local)["status"] == "running"
    assert job_row(db, custom)["status"] == "running"


async def test_stopping_the_runner_requeues_its_jobs_and_kills_their_processes(
    runner_client: AppFactory,
    tmp_path: Path,
    db,  # type: ignore[no-untyped-def]
) -> None:
    client = await runner_client()
    job_id = (await trigger(client, "stubborn"))["collectors"][0]["job_id"]  # ignores SIGTERM
    pids = await eventually(lambda: _async(read_pids(tmp_path / "stubborn.pids")), what="the program to start")
    await client.close()  # the app's cleanup stops the runner
    assert not any(process_alive(pid) for pid in pids)
    row = job_row(db, job_id)
    assert row["status"] == "queued"
    assert row["runner_id"] is None and row["pid"] is None and row["run_started_at"] is None
    assert row["message"].startswith("Requeued")
    (tmp_path / "stubborn.pids").unlink()

    again = await runner_client(runner_id="next-runner")
    await eventually(lambda: _async(read_pids(tmp_path / "stubborn.pids")), what="the job to start again")
    assert job_row(db, job_id)["runner_id"] == "next-runner"
    assert (await again.post(f"/api/collectors/runs/job/{job_id}/cancel")).status == 200


async def test_jobs_finish_when_every_database_connection_is_dropped_midway(runner_client: AppFactory, db) -> None:  # type: ignore[no-untyped-def]
    client = await runner_client()
    job_id = (await trigger(client, "demo"))["collectors"][0]["job_id"]

    async def progressing() -> bool:
        return bool((await get_job(client, job_id))["progress_percent"])

    await eventually(progressing, what="the demo to report progress")
    with db.cursor() as cur:  # the runner's pool and the collector's own connection alike
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cur.fetchone()[0] >= 2

    async def ended() -> str | None:  # read directly: the API's own pool has dead connections too
        status = job_row(db, job_id)["status"]
        return status if status in ("completed", "failed", "cancelled") else None

    assert await eventually(ended, what="the demo to end") == "completed"
    assert job_row(db, job_id)["message"] == "Demo collection completed: 5 pages"


async def test_wake_starts_a_queued_job_without_waiting_for_the_next_poll(runner_client: AppFactory) -> None:
    client = await runner_client(runner_poll_interval=60.0)
    job_id = (await trigger(client, "quiet"))["collectors"][0]["job_id"]
    client.app[RUNNER].wake()
    job = await job_ended(client, job_id)  # well before the 60 s poll
    assert job["status"] == "completed"


async def test_cancels_racing_with_runners_never_deadlock(
    runner_client: AppFactory,
    runner_settings: Settings,
    database_url: str,
    tmp_path: Path,
    db,  # type: ignore[no-untyped-def]
) -> None:
    script = 'for p in 10 20 30 40 50 60; do echo "@progress $p"; sleep 0.05; done'
    collectors = write_collectors_file(
        tmp_path / "race.toml", {name: {"command": ["/bin/sh", "-c", script]} for name in ("qa", "qb", "qc")}
    )
    client = await runner_client(collectors_file=collectors, runner_concurrency=4)
    batches = [(await trigger(client, "qa", "qb", "qc"))["batch_id"] for _ in range(30)]
    second = replace_settings(runner_settings, collectors_file=collectors, runner_concurrency=4)
    async with started_runner(second, database_url, runner_id="second-runner"):

        async def cancel(batch_id: str, delay: float) -> int:
            await asyncio.sleep(delay)
            response = await client.post(f"/api/collectors/runs/batch/{batch_id}/cancel")
            return response.status

        statuses = await asyncio.gather(*(cancel(b, 0.05 * i) for i, b in enumerate(batches[::2])))

        async def all_ended() -> bool:
            with db.cursor() as cur:
                cur.execute("SELECT count(*) FROM job_runs WHERE NOT collector_hub_is_terminal(status)")
                return bool(cur.fetchone()[0] == 0)

        await eventually(all_ended, timeout=60, what="every job to end")
    assert set(statuses) <= {200, 409}, statuses  # never a 500 from a deadlock
    with db.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM job_runs GROUP BY status")
        counts = dict(cur.fetchall())
    assert set(counts) <= {"completed", "cancelled"} and sum(counts.values()) == 90, counts
