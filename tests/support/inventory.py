"""Shared by the inventory tests: a hub whose ninja/threatlocker collectors point at the fakes,
triggering runs and following them to the end."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from collectors.inventory_records import DeviceRecord
from collectors.inventory_store import InventoryWriter
from server.app import create_app
from server.settings import Settings
from tests.fakes.ninja import FakeNinja
from tests.fakes.threatlocker import BASE_PATH, FakeThreatLocker
from tests.support.collectors_file import write_collectors_file
from tests.support.conditions import eventually
from tests.support.runs import get_json
from tests.support.settings import replace_settings

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


def vendor_collectors(envs: dict[str, dict[str, str]], timeout: float = 120) -> dict[str, dict[str, Any]]:
    """Collectors file entries for the built-in vendor collectors with these environments."""
    return {
        name: {"command": [sys.executable, "-m", f"collectors.{name}"], "env": env, "timeout": timeout}
        for name, env in envs.items()
    }


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
        collectors = write_collectors_file(tmp_path / "collectors.toml", vendor_collectors(envs, job_timeout))
        app_settings = replace_settings(
            settings,
            run_collectors=True,
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


def running_job(db: Any, collector: str, job_id: str, batch_id: str) -> None:
    """A running job of ``collector`` in a running batch, as the runner leaves them when it starts one."""
    with db.cursor() as cur:
        cur.execute("INSERT INTO job_batches (batch_id, status) VALUES (%s, 'running')", (batch_id,))
        cur.execute(
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status) VALUES (%s, %s, %s, %s, 'running')",
            (job_id, batch_id, collector, f"{collector}-collector"),
        )


def _device(n: int, **fields: Any) -> DeviceRecord:
    values: dict[str, Any] = {
        "vendor_id": str(n),
        "raw": {"id": n, "note": "raw \u00e9"},
        "display_name": f"Desk {n}",
        "host_name": f"WS-{n:03d}",
        "dns_name": f"ws-{n:03d}.corp.example",
        "platform": "windows" if n % 2 else "linux",
        "ip_addresses": (f"10.0.0.{n}",),
        "last_contact_at": dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC),
    }
    values.update(fields)
    return DeviceRecord(**values)


def fill_inventory(db: Any, database_url: str) -> dict[str, Any]:
    """Devices written the way the collectors write them (the ``filled`` fixture).

    ninja: WS-001..WS-012 (WS-012 then removed by a complete run); threatlocker: WS-005..WS-015."""
    empty_inventory(db)
    running_job(db, "ninja", "ni_00000001", "bc_00000001")
    writer = InventoryWriter(database_url, "ninja", "ni_00000001")
    writer.open()
    writer.write_page([_device(n) for n in range(1, 13)])
    writer.complete("done")
    writer.close()
    running_job(db, "ninja", "ni_00000002", "bc_00000002")
    writer = InventoryWriter(database_url, "ninja", "ni_00000002")
    writer.open()
    writer.write_page([_device(n) for n in range(1, 12)])
    counts = writer.complete("Collected {seen} devices ({new} new, {gone} gone)")
    writer.close()
    running_job(db, "threatlocker", "th_00000003", "bc_00000003")
    writer = InventoryWriter(database_url, "threatlocker", "th_00000003")
    writer.open()
    writer.write_page([_device(n, vendor_id=f"guid-{n}", dns_name=None) for n in range(5, 16)])
    writer.complete("done")
    writer.close()
    return {"counts": counts}
