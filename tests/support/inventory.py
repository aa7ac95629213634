"""Shared by the inventory tests: a hub whose ninja/threatlocker collectors point at the fakes,
triggering runs and following them to the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import replace_settings
from tests.fakes.ninja import FakeNinja
from tests.fakes.threatlocker import BASE_PATH, FakeThreatLocker
from tests.support.conditions import eventually

# Fast retries and short timeouts, so a test of a failure takes a second, not minutes.
FAST_HTTP = {"RETRY_BACKOFF": "0.05", "MAX_BACKOFF": "0.2", "TIMEOUT": "5", "MAX_RETRIES": "3"}


def ninja_env(fake: FakeNinja, url: str, **extra: str) -> dict[str, str]:
    env = {
        "NINJA_CLIENT_ID": fake.client_id,
        "NINJA_CLIENT_SECRET": fake.client_secret,
        "NINJA_BASE_URL": url,
        "NINJA_PAGE_SIZE": "100",
    }
    env.update({f"NINJA_{k}": v for k, v in FAST_HTTP.items()})
    env.update(extra)
    return env


def threatlocker_env(fake: FakeThreatLocker, url: str, **extra: str) -> dict[str, str]:
    env = {
        "THREATLOCKER_BASE_URL": url + BASE_PATH,
        "THREATLOCKER_API_TOKEN": fake.api_token,
        "THREATLOCKER_PAGE_SIZE": "100",
    }
    env.update({f"THREATLOCKER_{k}": v for k, v in FAST_HTTP.items()})
    env.update(extra)
    return env


def write_collectors_file(path: Path, envs: dict[str, dict[str, str]], timeout: float = 120) -> Path:
    """Collectors file entries for the built-in vendor collectors with these environments."""
    lines = []
    for name, env in envs.items():
        lines.append(f"[collectors.{name}]")
        lines.append(f"command = {json.dumps([sys.executable, '-m', f'collectors.{name}'])}")
        pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())
        lines.append(f"env = {{ {pairs} }}")
        lines.append(f"timeout = {timeout}")
    path.write_text("\n".join(lines) + "\n")
    return path


async def trigger(client: TestClient, *names: str) -> dict[str, Any]:
    response = await client.post("/api/collectors/run", json={"collectors": list(names)})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def get_json(client: TestClient, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


async def follow_job(client: TestClient, job_id: str, within: float = 60) -> tuple[dict[str, Any], list[Any]]:
    """Poll the job until it ends; return its final state and the (percent, message) seen while
    it ran."""
    seen: list[tuple[int | None, str | None]] = []
    last: dict[str, Any] = {}

    async def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = await get_json(client, f"/api/collectors/runs/job/{job_id}")
        last.update(job)
        if job["status"] == "running" and (not seen or seen[-1] != (job["progress_percent"], job["message"])):
            seen.append((job["progress_percent"], job["message"]))
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    try:
        job = await eventually(probe, timeout=within, interval=0.02, what=f"job {job_id} to end")
    except AssertionError as exc:
        # Where it stood (queued, or running since when and saying what) tells a run that never
        # started from one that stalled, and where.
        raise AssertionError(f"{exc}; its last state: {last}; progress seen: {seen[-5:]}") from None
    return job, seen


async def all_devices(client: TestClient, query: str = "") -> list[dict[str, Any]]:
    """Every device the list answers for ``query``, following next_cursor."""
    devices: list[dict[str, Any]] = []
    cursor = None
    while True:
        sep = "&" if query else ""
        path = f"/api/inventory/devices?{query}{sep}limit=500" + (f"&cursor={cursor}" if cursor else "")
        body = await get_json(client, path)
        devices.extend(body["devices"])
        cursor = body["next_cursor"]
        if cursor is None:
            return devices


def hub_factory(aiohttp_client: Any, settings: Settings, tmp_path: Path) -> Any:
    """``await make(envs)``: a server whose runner runs the vendor collectors named in ``envs``
    (name -> environment) against the fakes; no rate limit on the tests' polling."""

    async def make(envs: dict[str, dict[str, str]], job_timeout: float = 120) -> TestClient:
        collectors = write_collectors_file(tmp_path / "collectors.toml", envs, job_timeout)
        app_settings = replace_settings(
            settings,
            run_collectors=True,
            runner_poll_interval=0.1,
            cancel_grace_period=5,
            collectors_file=collectors,
            rate_limit_per_minute=0,
        )
        client: TestClient = await aiohttp_client(create_app(app_settings))
        return client

    return make


def empty_inventory(db: Any) -> None:
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches; DELETE FROM inventory_devices; DELETE FROM inventory_runs")
