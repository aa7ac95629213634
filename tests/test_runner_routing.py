"""Runner routing (docs/COLLECTORS.md, "Runner routing"): two real ``collector-hub serve``
processes on one database, one with NinjaOne credentials (the fake NinjaOne's) and a label,
one with neither. Each takes only the jobs it can run; a job nobody can take fails saying why."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from collectors.registry import RegistryError, load_registry
from server.settings import SettingsError, load_settings
from tests.fakes.common import serve
from tests.fakes.ninja import FakeNinja
from tests.support.collectors_file import program, write_collectors_file
from tests.support.conditions import eventually
from tests.support.database import execute, fetch_rows, truncate
from tests.support.inventory import ninja_env
from tests.support.processes import ServeProcess

NINJA_RUNS = 5


def serve_env(database_url: str, data_dir: Path, collectors_file: Path, runner_id: str) -> dict[str, str]:
    return {
        "COLLECTOR_HUB_DATABASE_URL": database_url,
        "COLLECTOR_HUB_DATA_DIR": str(data_dir),
        "COLLECTOR_HUB_COLLECTORS_FILE": str(collectors_file),
        "COLLECTOR_HUB_RUNNER_ID": runner_id,
        "COLLECTOR_HUB_RUN_SCHEDULES": "0",
        "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "0",
        "COLLECTOR_HUB_SHUTDOWN_TIMEOUT": "2",
        "COLLECTOR_HUB_UNCLAIMABLE_TIMEOUT": "10",
        "COLLECTOR_HUB_CROSS_VENDOR_BY_DEFAULT": "0",
        "COLLECTOR_HUB_VENDOR_RETRIES": "0",
    }


async def run_one(session: aiohttp.ClientSession, url: str, collector: str) -> str:
    async with session.post(url + "/api/collectors/run", json={"collectors": [collector]}) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["collectors"][0]["job_id"])


async def ended(session: aiohttp.ClientSession, url: str, job_id: str, within: float = 60) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        async with session.get(f"{url}/api/collectors/runs/job/{job_id}") as resp:
            job: dict[str, Any] = await resp.json()
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    return await eventually(probe, timeout=within, what=f"{job_id} ended")


async def test_every_ninja_job_runs_on_the_node_with_ninja_credentials(database_url, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await execute(db, truncate("job_batches", "runners"))
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "at-hq": {"command": program("quiet_ok"), "runner_labels": {"site": "hq"}},
            "at-dc": {"command": program("quiet_ok"), "runner_labels": {"site": "dc"}},
        },
    )
    fake = FakeNinja(devices=20)
    async with serve(fake.app(), fake.faults) as ninja_url:
        with_credentials = {
            **serve_env(database_url, tmp_path / "a", collectors, "with-ninja"),
            **ninja_env(fake, ninja_url),
            "COLLECTOR_HUB_RUNNER_LABELS": "site=hq, zone=1",
        }
        without = serve_env(database_url, tmp_path / "b", collectors, "without-ninja")
        servers = [ServeProcess(with_credentials, tmp_path / "a.log"), ServeProcess(without, tmp_path / "b.log")]
        try:
            await asyncio.gather(*(server.start() for server in servers))
            async with aiohttp.ClientSession() as session:
                # Both runners are live before any job is queued: each could claim it.
                async def both_live() -> list[dict[str, Any]] | None:
                    async with session.get(servers[1].url + "/api/runners") as resp:
                        listed: list[dict[str, Any]] = (await resp.json())["runners"]
                    return listed if sum(r["live"] for r in listed) == 2 else None

                listed = {r["runner_id"]: r for r in await eventually(both_live, what="two live runners")}
                assert "ninja" in listed["with-ninja"]["collectors"]
                assert listed["with-ninja"]["labels"] == ["site=hq", "zone=1"]
                assert listed["with-ninja"]["without_credentials"] == ["threatlocker"]
                assert "ninja" not in listed["without-ninja"]["collectors"]
                assert "at-hq" in listed["without-ninja"]["collectors"]  # known; its label decides
                assert listed["without-ninja"]["labels"] == []
                assert listed["without-ninja"]["without_credentials"] == ["ninja", "threatlocker"]

                for n in range(NINJA_RUNS):  # one at a time: two runs of one source never overlap
                    job = await ended(session, servers[n % 2].url, await run_one(session, servers[n % 2].url, "ninja"))
                    assert job["status"] == "completed", job
                    job = await ended(session, servers[n % 2].url, await run_one(session, servers[n % 2].url, "at-hq"))
                    assert job["status"] == "completed", job

                nobody = [await run_one(session, servers[1].url, name) for name in ("threatlocker", "at-dc")]
                threatlocker, at_dc = [await ended(session, servers[1].url, job_id, 45) for job_id in nobody]
            ran_on = await fetch_rows(
                db, "SELECT collector, runner_id, status FROM job_runs WHERE status = 'completed'"
            )
        finally:
            await asyncio.gather(*(server.stop() for server in servers))
    assert sorted((r["collector"], r["runner_id"]) for r in ran_on) == sorted(
        [("ninja", "with-ninja")] * NINJA_RUNS + [("at-hq", "with-ninja")] * NINJA_RUNS
    )
    assert (threatlocker["status"], threatlocker["message"]) == (
        "failed",
        "No live runner has threatlocker credentials",
    )
    assert "COLLECTOR_HUB_UNCLAIMABLE_TIMEOUT" in threatlocker["error"]
    assert (at_dc["status"], at_dc["message"]) == ("failed", "No live runner has the labels site=dc")
    assert "does not take ninja jobs: NINJA_CLIENT_ID and NINJA_CLIENT_SECRET not set" in servers[1].log()


def test_labels_are_checked_where_they_are_given(tmp_path: Path) -> None:
    assert load_settings({"COLLECTOR_HUB_RUNNER_LABELS": " zone=1,site=hq ,"}).runner_labels == ("site=hq", "zone=1")
    for bad in ("site", "site=", "Site=hq", "site=h q"):
        with pytest.raises(SettingsError, match="COLLECTOR_HUB_RUNNER_LABELS must be"):
            load_settings({"COLLECTOR_HUB_RUNNER_LABELS": bad})
    path = write_collectors_file(tmp_path / "c.toml", {"x1": {"command": ["true"], "runner_labels": {"site": "hq"}}})
    assert load_registry(path)["x1"].runner_labels == ("site=hq",)
    bad_tables: list[Any] = [["site=hq"], {"site": 1}, {"Site": "hq"}]
    for bad in bad_tables:
        path = write_collectors_file(tmp_path / "c.toml", {"x1": {"command": ["true"], "runner_labels": bad}})
        with pytest.raises(RegistryError, match="runner_labels must be a table of labels"):
            load_registry(path)
