"""The ninja collector end to end: the real runner starts the real collector process, which
talks to a fake NinjaOne (tests/fakes/ninja.py) and fills the inventory in PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import psycopg2.extras
import pytest
from aiohttp.test_utils import TestClient

from server.settings import Settings
from tests.fakes.common import Fault, serve
from tests.fakes.ninja import FakeNinja
from tests.support.conditions import eventually
from tests.support.database import execute, fetch_row
from tests.support.inventory import (
    all_devices,
    empty_inventory,
    follow_job,
    hub_factory,
    ninja_env,
)
from tests.support.runs import get_json, trigger

Hub = Callable[..., Awaitable[TestClient]]


@pytest.fixture(autouse=True)
def empty_tables(db) -> None:  # type: ignore[no-untyped-def]
    empty_inventory(db)


@pytest.fixture
async def stack() -> Any:
    async with AsyncExitStack() as exits:
        yield exits


@pytest.fixture
def hub(aiohttp_client, settings: Settings, tmp_path: Path) -> Hub:  # type: ignore[no-untyped-def]
    make = hub_factory(aiohttp_client, settings, tmp_path)

    async def make_ninja(env: dict[str, str], job_timeout: float = 120) -> TestClient:
        client: TestClient = await make({"ninja": env}, job_timeout)
        return client

    return make_ninja


async def run_ninja(client: TestClient) -> tuple[dict[str, Any], list[Any]]:
    job_id = (await trigger(client, "ninja"))["collectors"][0]["job_id"]
    return await follow_job(client, job_id)


def inventory_runs(db) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM inventory_runs ORDER BY run_id")
        return [dict(r) for r in cur.fetchall()]


def record_written_at(db) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with db.cursor() as cur:
        cur.execute("SELECT vendor_id, record_written_at FROM inventory_devices WHERE source = 'ninja'")
        return dict(cur.fetchall())


async def test_a_run_fills_the_inventory_and_a_second_marks_the_vanished_device_removed(hub: Hub, stack, db) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=250, organizations=2)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    client = await hub(ninja_env(fake, url))

    job, seen = await run_ninja(client)
    assert job["status"] == "completed", job["error"]
    assert job["message"] == "Collected 250 devices (250 new, 0 gone)"
    # The first run has nothing to estimate from: no percent until the end.
    assert all(p is None for p, m in seen if m and m.startswith("Fetched")), seen
    devices = await all_devices(client, "source=ninja")
    assert len(devices) == 250
    first = next(d for d in devices if d["id"] == str(fake.device_id(1)))
    assert first["host_name"] == "HOST-00001" and first["dns_name"] == "host-00001.corp.example"
    assert first["organization"] == {"id": "2", "name": "Org 2"}
    assert first["platform"] == "windows" and first["device_class"] == "WINDOWS_SERVER" and first["os"] == "Windows"
    assert first["manufacturer"] == "Fabrikam" and first["serial_number"] == "SN000001"  # computer-systems join
    assert first["ip_addresses"] == ["10.0.0.1"] and first["online"] is True
    assert first["last_contact_at"] == "2025-11-24T16:00:01.250000Z"  # epoch seconds, fractional
    assert first["removed_at"] is None and first["last_seen_job_id"] == job["job_id"]
    # Every documented path is the /v2 form; the bearer token, never the secret, on API calls.
    api_calls = [r for r in fake.requests if "/oauth/" not in r.path]
    assert {r.path for r in api_calls} == {"/v2/organizations", "/v2/devices-detailed", "/v2/queries/computer-systems"}
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in api_calls)
    assert [r.query.get("after") for r in api_calls if r.path == "/v2/devices-detailed"] == [
        None, str(fake.device_id(99)), str(fake.device_id(199))
    ]  # fmt: skip

    written = record_written_at(db)
    fake.removed.add(7)
    fake.page_delay = 0.2  # slow enough to watch every page's progress
    job, seen = await run_ninja(client)
    assert job["message"] == "Collected 249 devices (0 new, 1 gone)", job
    # Nothing changed at the vendor, and the report only filled in what the list left empty:
    # no device's record was written again.
    assert record_written_at(db) == written
    # Now the previous run's count is the estimate: percents rise, never 100 before the end.
    percents = [p for p, m in seen if p is not None]
    assert percents == sorted(percents) and percents and max(percents) < 100, seen
    assert any(m and m.startswith("Fetched ") and " of about 250 devices" in m for _, m in seen), seen
    gone = await get_json(client, f"/api/inventory/devices/ninja/{fake.device_id(7)}")
    assert gone["removed_at"] is not None and gone["raw"]["systemName"] == "HOST-00007"
    assert len(await all_devices(client, "source=ninja")) == 249
    assert [r["status"] for r in inventory_runs(db)] == ["completed", "completed"]


async def test_the_token_is_refreshed_before_it_expires_and_once_on_a_401(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=600, token_lifetime=1.0, page_delay=0.25)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    fake.faults.add(Fault("/devices-detailed", status=401, skip=1, body=b'{"error": "invalid_token"}'))
    client = await hub(ninja_env(fake, url, NINJA_COMPUTER_SYSTEMS="0"))
    job, _ = await run_ninja(client)
    assert job["status"] == "completed", job
    assert fake.expired_token_uses == 0  # refreshed ahead of expiry, never sent stale
    assert fake.tokens_issued >= 3  # the first, at least one ahead of expiry, one after the 401
    assert not any(r.path.endswith("computer-systems") for r in fake.requests)  # turned off


@pytest.mark.parametrize("retry_after", ["1", None])
async def test_429_is_retried_honouring_retry_after(hub: Hub, stack, retry_after: str | None) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=150)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    fake.faults.add(Fault("/devices-detailed", status=429, retry_after=retry_after, skip=1))
    client = await hub(ninja_env(fake, url))
    job, _ = await run_ninja(client)
    assert job["status"] == "completed", job
    pages = [r for r in fake.requests if r.path == "/v2/devices-detailed"]
    assert len(pages) == 3  # page 1, page 2 refused with 429, page 2 again
    assert pages[1].query == pages[2].query


async def test_retry_after_waits_as_long_as_it_says(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=50)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    fake.faults.add(Fault("/organizations", status=429, retry_after="2"))
    client = await hub(ninja_env(fake, url))  # backoff alone would wait at most 0.05 s
    job, _ = await run_ninja(client)
    assert job["status"] == "completed"
    refused, accepted = [r for r in fake.requests if r.path == "/v2/organizations"]
    assert accepted.at - refused.at >= 1.9


async def test_a_500_then_success_completes(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=120)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    fake.faults.add(Fault("/devices-detailed", status=500, times=2))
    client = await hub(ninja_env(fake, url))
    job, _ = await run_ninja(client)
    assert job["status"] == "completed" and job["message"] == "Collected 120 devices (120 new, 0 gone)"


async def test_a_page_that_hangs_past_the_timeout_is_retried(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=120)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    fake.faults.add(Fault("/devices-detailed", kind="hang", skip=1))
    client = await hub(ninja_env(fake, url, NINJA_TIMEOUT="0.5"))
    job, _ = await run_ninja(client)
    assert job["status"] == "completed", job


@pytest.mark.parametrize(
    ("setup", "env", "error"),
    [
        ("bad secret", {"NINJA_CLIENT_SECRET": "wrong-secret-wrong-secret"},
         "NinjaOne rejected the client credentials (HTTP 401)"),
        ("retries exhausted", {}, "NinjaOne did not answer GET /v2/devices-detailed at 127.0.0.1:"),
        ("malformed", {}, "NinjaOne sent a malformed answer to GET /v2/devices-detailed: not JSON"),
        ("hang", {"NINJA_TIMEOUT": "0.3", "NINJA_MAX_RETRIES": "1"}, "no answer within 0.3 s"),
        ("long retry-after", {}, "NinjaOne asked to wait 3600 s before retrying GET /v2/devices-detailed"),
        ("unreachable", {"NINJA_BASE_URL": "http://127.0.0.1:9"}, "NinjaOne did not answer POST /ws/oauth/token"),
        ("stuck report", {}, "NinjaOne's computer-systems report paging did not advance"),
    ],
)  # fmt: skip
async def test_each_way_to_fail_has_a_clear_error_and_no_secret(  # type: ignore[no-untyped-def]
    hub: Hub, stack, db, setup: str, env: dict[str, str], error: str
) -> None:
    fake = FakeNinja(devices=150)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    fault = {
        "retries exhausted": Fault("/devices-detailed", status=503, times=10),
        "malformed": Fault("/devices-detailed", kind="malformed"),
        "hang": Fault("/devices-detailed", kind="hang", times=2),
        "long retry-after": Fault("/devices-detailed", status=429, retry_after="3600"),
    }.get(setup)
    if fault is not None:
        fake.faults.add(fault)
    fake.stuck_report = setup == "stuck report"
    client = await hub({**ninja_env(fake, url), **env})
    job, _ = await run_ninja(client)
    assert job["status"] == "failed", job
    assert error in job["error"], job["error"]
    assert "Traceback" not in job["error"]
    with db.cursor() as cur:
        cur.execute("SELECT job_runs::text FROM job_runs UNION ALL SELECT job_batches::text FROM job_batches")
        stored = " ".join(r[0] for r in cur.fetchall())
    tokens = list(fake.tokens)
    for secret in [fake.client_secret, *tokens]:
        assert secret not in stored


async def test_an_empty_account_completes_with_zero(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=0)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    client = await hub(ninja_env(fake, url))
    job, _ = await run_ninja(client)
    assert job["status"] == "completed" and job["message"] == "Collected 0 devices (0 new, 0 gone)"


async def test_the_api_v2_prefix_and_oauth_token_path_work_too(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=30)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    client = await hub(ninja_env(fake, url, NINJA_API_PREFIX="/api/v2", NINJA_TOKEN_PATH="/oauth/token"))
    job, _ = await run_ninja(client)
    assert job["status"] == "completed", job
    assert {r.path for r in fake.requests} >= {"/oauth/token", "/api/v2/devices-detailed"}


async def test_a_cancelled_run_stops_between_pages_and_marks_nothing_removed(hub: Hub, stack, db) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=300)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    client = await hub(ninja_env(fake, url))
    job, _ = await run_ninja(client)
    assert job["status"] == "completed"

    fake.page_delay = 0.5
    fake.removed.update({1, 250})
    job_id = (await trigger(client, "ninja"))["collectors"][0]["job_id"]

    async def first_page_stored() -> bool:
        job = await get_json(client, f"/api/collectors/runs/job/{job_id}")
        return bool(job["message"] and job["message"].startswith("Fetched 100 "))

    await eventually(first_page_stored, what="the first page to be stored")
    response = await client.post(f"/api/collectors/runs/job/{job_id}/cancel")
    assert response.status == 200
    job, _ = await follow_job(client, job_id)
    assert job["status"] == "cancelled"

    async def run_recorded() -> list[dict[str, Any]]:
        runs = inventory_runs(db)
        return runs if runs[-1]["status"] == "stopped" else []

    runs = await eventually(run_recorded, what="the collector to record that it stopped")
    assert runs[-1]["devices_seen"] < 299
    assert await all_devices(client, "source=ninja&removed=true") == []
    assert len(await all_devices(client, "source=ninja")) == 300


async def test_two_runs_of_the_same_source_never_interleave(hub: Hub, stack, db) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=300)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    # The first run is held at its first device page until the second has been refused: a
    # run that merely started first could end before the second process is up (on a loaded
    # machine, starting a Python collector takes longer than a short run), and then the second
    # rightly takes the inventory. The HTTP timeout is long so that the held page is not retried.
    fake.device_pages_open.clear()
    client = await hub(ninja_env(fake, url, NINJA_TIMEOUT="120"))
    first = (await trigger(client, "ninja"))["collectors"][0]["job_id"]

    async def first_running() -> bool:
        return bool([r for r in inventory_runs(db) if r["status"] == "running"])

    await eventually(first_running, what="the first run to take the inventory")
    second = (await trigger(client, "ninja"))["collectors"][0]["job_id"]
    refused, _ = await follow_job(client, second)
    assert refused["status"] == "failed"
    assert f"another ninja run (job {first}) is writing the inventory" in refused["error"]
    fake.device_pages_open.set()
    done, _ = await follow_job(client, first)
    assert done["status"] == "completed"
    assert [r["status"] for r in inventory_runs(db)] == ["completed"]  # the refused run recorded nothing


async def test_25000_devices(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=25_000, organizations=40)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    client = await hub(ninja_env(fake, url, NINJA_PAGE_SIZE="1000"))
    started = time.monotonic()
    job, _ = await run_ninja(client)
    assert job["status"] == "completed", job
    assert job["message"] == "Collected 25,000 devices (25,000 new, 0 gone)", (job, time.monotonic() - started)
    summary = await get_json(client, "/api/inventory/summary")
    ninja = next(s for s in summary["sources"] if s["source"] == "ninja")
    assert ninja["devices"] == 25_000 and ninja["last_successful_run"]["job_id"] == job["job_id"]


async def test_a_failed_run_only_adds_and_updates(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=250)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    client = await hub(ninja_env(fake, url))
    assert (await run_ninja(client))[0]["status"] == "completed"
    fake.removed.add(3)
    fake.device_count = 260  # ten new devices, the last page
    fake.faults.add(Fault("/devices-detailed", status=503, skip=2, times=10))  # the third page never comes
    job, _ = await run_ninja(client)
    assert job["status"] == "failed" and "HTTP 503" in job["error"]
    assert await all_devices(client, "source=ninja&removed=true") == []  # device 3 is not marked
    assert len(await all_devices(client, "source=ninja")) == 250  # pages one and two were stored


async def test_the_job_timeout_stops_the_run_between_pages_and_marks_nothing_removed(hub: Hub, stack, db) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=200)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    client = await hub(ninja_env(fake, url), job_timeout=5)
    assert (await run_ninja(client))[0]["status"] == "completed"
    fake.removed.add(150)
    fake.page_delay = 4.0  # the second page ends past the 5-second timeout
    job, _ = await run_ninja(client)
    assert job["status"] == "failed" and job["error"].startswith("Timed out after 5 seconds"), job

    async def stopped() -> bool:
        return inventory_runs(db)[-1]["status"] == "stopped"

    await eventually(stopped, what="the collector to record that it stopped")
    assert await all_devices(client, "source=ninja&removed=true") == []


async def test_a_run_that_changes_much_of_the_inventory_refreshes_its_statistics(hub: Hub, stack, db) -> None:  # type: ignore[no-untyped-def]
    """collectors/inventory_store.py: the run refreshes the planner's statistics of the inventory
    itself instead of leaving them to autovacuum's next round, so what reads the inventory right
    after it is planned on the devices there are (test_25000_devices once got a 500: the
    summary's coverage query, planned for a table the statistics still said was empty, ran past
    the query timeout)."""
    await execute(db, "ALTER TABLE inventory_devices SET (autovacuum_enabled = false)")  # only the run may
    try:
        fake = FakeNinja(devices=600, organizations=2)
        url = await stack.enter_async_context(serve(fake.app(), fake.faults))
        client = await hub(ninja_env(fake, url))
        job, _ = await run_ninja(client)
        assert job["message"] == "Collected 600 devices (600 new, 0 gone)", job
        row = await fetch_row(
            db,
            "SELECT c.reltuples, (SELECT count(*) FROM inventory_devices) AS rows"
            " FROM pg_class c WHERE c.oid = 'inventory_devices'::regclass",
        )
        assert row is not None and row["reltuples"] == row["rows"], row  # a small table: ANALYZE reads every row
    finally:
        await execute(db, "ALTER TABLE inventory_devices RESET (autovacuum_enabled)")
