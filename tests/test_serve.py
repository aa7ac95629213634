"""The README's first command, as a new user runs it: `collector-hub serve` with no database
URL starts an embedded PostgreSQL, runs a demo batch to completion, and stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.conditions import eventually
from tests.support.processes import clean_environment, collector_hub_command, free_port
from tests.support.run_shapes import BATCH_JOB_FIELDS


@pytest.fixture
def served(tmp_path: Path, embedded_data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*collector_hub_command(), "serve", "--port", str(port)],
            # The demo paced for a test (about 1.5 s) rather than for the eye (ten seconds): the
            # collector reads DEMO_PAGE_SECONDS from the environment the server passes it.
            env=clean_environment(COLLECTOR_HUB_DATA_DIR=str(embedded_data_dir), DEMO_PAGE_SECONDS="0.15"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", proc, log_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


async def test_serve_runs_a_demo_batch_on_embedded_postgres(served, embedded_data_dir):
    url, proc, log_path = served
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                async with http.get(f"{url}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(ready, timeout=90, what="the server answers /readyz")
        async with http.post(f"{url}/api/collectors/run", json={"collectors": ["demo"]}) as resp:
            assert resp.status == 201
            batch_id = (await resp.json())["batch_id"]

        async def completed() -> dict | None:
            async with http.get(f"{url}/api/collectors/runs/batch/{batch_id}") as resp:
                body = await resp.json()
            return body if body["status"] in ("completed", "failed", "cancelled") else None

        batch = await eventually(completed, timeout=60, interval=0.5, what="the demo batch ends")
    assert batch["status"] == "completed", batch
    assert batch["progress_percent"] == 100
    (job,) = batch["collectors"]
    assert BATCH_JOB_FIELDS <= job.keys()
    assert job["status"] == "completed" and job["duration_seconds"] >= 1 and job["error"] is None
    assert (embedded_data_dir / "pgdata" / "PG_VERSION").exists()

    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 60) == 0, log_path.read_text()
    # The embedded PostgreSQL stopped with the server: no postmaster left on its data dir.
    assert not (embedded_data_dir / "pgdata" / "postmaster.pid").exists()


def test_serve_with_unreachable_database_says_so_and_exits_1(tmp_path):
    port = free_port()  # nothing listens here
    result = subprocess.run(
        [*collector_hub_command(), "serve", "--port", str(free_port())],
        env=clean_environment(COLLECTOR_HUB_DATABASE_URL=f"postgresql://nobody@127.0.0.1:{port}/none"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_setting_names_it_and_exits_2(tmp_path):
    result = subprocess.run(
        [*collector_hub_command(), "serve"],
        env=clean_environment(COLLECTOR_HUB_PORT="http"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "COLLECTOR_HUB_PORT must be an integer" in result.stderr
