"""A start that fails touches nothing (ARCHITECTURE rule 12): a second ``collector-hub serve``
on a port already in use used to log "serving on", start a runner that claimed the queued
jobs, start their collectors, kill and requeue them, and only then exit with "address already
in use". A collector with side effects would have run twice. Now the port is bound first."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

from tests.support.runs import trigger


def job_rows(db: Any) -> list[tuple[Any, ...]]:
    with db.cursor() as cur:
        cur.execute("SELECT job_id, status, runner_id, pid, run_started_at, message, seq FROM job_runs ORDER BY job_id")
        return list(cur.fetchall())


async def test_a_second_serve_on_a_taken_port_exits_1_and_no_job_row_changed(
    client: Any, db: Any, database_url: str, tmp_path: Path
) -> None:
    await trigger(client, "demo", "ninja")
    before = job_rows(db)
    assert [row[1] for row in before] == ["queued", "queued"]

    with socket.socket() as taken:  # the first server, as far as the port is concerned
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_")}
        env.update(
            COLLECTOR_HUB_DATABASE_URL=database_url,
            COLLECTOR_HUB_DATA_DIR=str(tmp_path),
            COLLECTOR_HUB_RUNNER_POLL_INTERVAL="0.05",  # a runner, had it started, would claim at once
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "serve", "--port", str(port),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = (out + err).decode()
    assert proc.returncode == 1, text
    assert job_rows(db) == before  # no job claimed, started, killed or requeued
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in text
    assert "Traceback" not in text
    assert "serving on" not in text and "started job" not in text and "runner" not in text.lower()


async def test_an_embedded_database_that_cannot_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """It used to end in a stack trace (seen with a data directory PostgreSQL could not use)."""
    not_a_directory = tmp_path / "data"
    not_a_directory.write_text("a file where the data directory should be")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_")}
    env["COLLECTOR_HUB_DATA_DIR"] = str(not_a_directory)
    with socket.socket() as probe:  # a free port, so that serve gets as far as the database
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for command in (["serve", "--port", str(port)], ["migrate"]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", *command,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        text = (out + err).decode()
        assert proc.returncode == 1, text
        assert f"collector-hub {command[0]}: error: cannot start the embedded PostgreSQL in {not_a_directory}" in text
        assert "COLLECTOR_HUB_DATA_DIR" in text and "Traceback" not in text
