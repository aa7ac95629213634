"""Issue 15, item 5, as a new user met it: a job was queued for a collector, the collector was
then removed from the collectors file and the server restarted. The job used to stay queued
forever, with nothing in the logs, and latest/history refused the collector's name with 400.
Now the unclaimable timeout fails it with an error that says why (and logs it), and its past
runs stay readable under the old name."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from tests.support.collectors_file import write_collectors_file
from tests.support.conditions import eventually
from tests.support.runs import trigger
from tests.support.settings import replace_settings


async def test_a_job_of_a_removed_collector_fails_clearly_and_its_runs_stay_readable(
    aiohttp_client: Any, settings: Any, tmp_path: Path, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    demo = {"command": [sys.executable, "-m", "collectors.demo"], "env": {"DEMO_PAGES": "1"}}
    before = write_collectors_file(tmp_path / "before.toml", {"demo": demo, "gone": demo})
    after = write_collectors_file(tmp_path / "after.toml", {"demo": demo})

    # Queued while the collector existed (no runner yet)...
    first = await aiohttp_client(create_app(replace_settings(settings, collectors_file=before)))
    job_id = (await trigger(first, "gone"))["collectors"][0]["job_id"]
    await first.close()

    # ...then the server restarts with a file that no longer has it.
    settings = replace_settings(
        settings, collectors_file=after, run_collectors=True, runner_poll_interval=0.1, unclaimable_timeout=1.0
    )
    client = await aiohttp_client(create_app(settings))

    async def failed() -> dict[str, Any] | None:
        resp = await client.get(f"/api/collectors/runs/job/{job_id}")
        job: dict[str, Any] = await resp.json()
        return job if job["status"] != "queued" else None

    job = await eventually(failed, timeout=30, what="the removed collector's queued job to end")
    assert job["status"] == "failed"
    assert "No live runner offered this collector" in job["error"]
    assert "COLLECTOR_HUB_UNCLAIMABLE_TIMEOUT" in job["error"]
    assert job_id in caplog.text  # and the server said so in its log

    latest = await client.get("/api/collectors/runs/latest?collectors=gone")
    assert latest.status == 200, await latest.text()
    assert [run["job_id"] for run in (await latest.json())["latest_runs"]] == [job_id]
    history = await client.get("/api/collectors/history?collectors=gone")
    assert history.status == 200, await history.text()
    assert job_id in await history.text()
