"""The threatlocker collector end to end against the fake ThreatLocker Portal API, and both
vendor collectors in one batch: the summary's counts and coverage gap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from collectors.contract import EXIT_CONFIG
from server.settings import Settings
from tests.fakes.common import Fault, serve
from tests.fakes.ninja import FakeNinja
from tests.fakes.threatlocker import FakeThreatLocker
from tests.support.inventory import (
    all_devices,
    empty_inventory,
    follow_job,
    hub_factory,
    ninja_env,
    threatlocker_env,
)
from tests.support.runs import get_json, trigger

Hub = Callable[[dict[str, dict[str, str]]], Awaitable[TestClient]]


@pytest.fixture(autouse=True)
def empty_tables(db) -> None:  # type: ignore[no-untyped-def]
    empty_inventory(db)


@pytest.fixture
async def stack() -> Any:
    async with AsyncExitStack() as exits:
        yield exits


@pytest.fixture
def hub(aiohttp_client, settings: Settings, tmp_path: Path) -> Hub:  # type: ignore[no-untyped-def]
    make: Hub = hub_factory(aiohttp_client, settings, tmp_path)
    return make


async def run(client: TestClient, name: str) -> tuple[dict[str, Any], list[Any]]:
    job_id = (await trigger(client, name))["collectors"][0]["job_id"]
    return await follow_job(client, job_id)


@pytest.mark.parametrize("totals", ["pagination", "separate", "rows", "none"])
async def test_totals_are_read_from_whichever_headers_the_answer_carries(hub: Hub, stack, totals: str) -> None:  # type: ignore[no-untyped-def]
    fake = FakeThreatLocker(computers=250, totals=totals, page_delay=0.2)  # slow enough to watch
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    client = await hub({"threatlocker": threatlocker_env(fake, url)})
    job, seen = await run(client, "threatlocker")
    assert job["status"] == "completed", job["error"]
    assert job["message"] == "Collected 250 devices (250 new, 0 gone)"
    messages = [m for _, m in seen]
    if totals == "none":
        assert all(p is None for p, m in seen if m and m.startswith("Fetched")), seen
    else:
        assert "Fetched 100 of 250 computers" in messages or "Fetched 200 of 250 computers" in messages, seen
        assert all(p is None or p < 100 for p, _ in seen), seen
    pages = [json.loads(r.body) for r in fake.requests]
    assert [p["pageNumber"] for p in pages] == [1, 2, 3]
    assert pages[0]["pageSize"] == 100 and pages[0]["orderBy"] == "computername" and pages[0]["showDeleted"] is False
    computers = await all_devices(client, "source=threatlocker")
    assert len(computers) == 250
    one = next(c for c in computers if c["id"] == fake.computer_id(1))
    assert one["display_name"] == "HOST-00001" and one["host_name"] == "host-00001.corp.example"
    assert one["platform"] == "windows" and one["os"] == "Windows"
    assert one["last_contact_at"] == "2026-11-29T10:01:00.000000Z"


async def test_the_token_is_sent_raw_and_the_organization_as_managed_organization_id(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeThreatLocker(computers=5)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    env = threatlocker_env(fake, url, THREATLOCKER_ORGANIZATION_ID=fake.organization_id)
    client = await hub({"threatlocker": env})
    job, _ = await run(client, "threatlocker")
    assert job["status"] == "completed", job["error"]
    assert fake.requests[0].headers["Authorization"] == fake.api_token  # no "Bearer "
    assert fake.requests[0].headers["ManagedOrganizationId"] == fake.organization_id


@pytest.mark.parametrize(
    ("setup", "env", "error"),
    [
        ("bad token", {"THREATLOCKER_API_TOKEN": "not-the-token-not-the-token"},
         "ThreatLocker rejected the API token (HTTP 401)"),
        ("foreign organization", {"THREATLOCKER_ORGANIZATION_ID": "11111111-2222-3333-4444-555555555555"},
         "ThreatLocker rejected the API token (HTTP 403) or its access to THREATLOCKER_ORGANIZATION_ID"),
        ("malformed", {}, "ThreatLocker sent a malformed answer to POST /Computer/ComputerGetByAllParameters"),
        ("retries exhausted", {}, "ThreatLocker did not answer POST /Computer/ComputerGetByAllParameters"),
        ("page number ignored", {}, "ThreatLocker's paging did not advance (page 2 repeats the one before)"),
    ],
)  # fmt: skip
async def test_each_way_to_fail_has_a_clear_error(  # type: ignore[no-untyped-def]
    hub: Hub, stack, setup: str, env: dict[str, str], error: str
) -> None:
    fake = FakeThreatLocker(computers=150)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    if setup == "malformed":
        fake.faults.add(Fault("/ComputerGetByAllParameters", kind="malformed", skip=1))
    fake.ignore_page_number = setup == "page number ignored"
    if setup == "retries exhausted":
        fake.faults.add(Fault("/ComputerGetByAllParameters", status=502, times=10))
    client = await hub({"threatlocker": {**threatlocker_env(fake, url), **env}})
    job, _ = await run(client, "threatlocker")
    assert job["status"] == "failed"
    assert error in job["error"], job["error"]
    assert fake.api_token not in json.dumps(job)


async def test_429_without_retry_after_backs_off_and_succeeds(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    fake = FakeThreatLocker(computers=150)
    url = await stack.enter_async_context(serve(fake.app(), fake.faults))
    fake.faults.add(Fault("/ComputerGetByAllParameters", status=429, skip=1, times=2))
    client = await hub({"threatlocker": threatlocker_env(fake, url)})
    job, _ = await run(client, "threatlocker")
    assert job["status"] == "completed", job["error"]
    assert [json.loads(r.body)["pageNumber"] for r in fake.requests] == [1, 2, 2, 2]


async def test_both_collectors_fill_the_summary_with_counts_and_the_coverage_gap(hub: Hub, stack) -> None:  # type: ignore[no-untyped-def]
    ninja = FakeNinja(devices=120)
    threatlocker = FakeThreatLocker(computers=100, name_offset=30)  # HOST-00030 .. HOST-00129
    ninja_url = await stack.enter_async_context(serve(ninja.app(), ninja.faults))
    tl_url = await stack.enter_async_context(serve(threatlocker.app(), threatlocker.faults))
    client = await hub({"ninja": ninja_env(ninja, ninja_url), "threatlocker": threatlocker_env(threatlocker, tl_url)})
    created = await trigger(client, "ninja", "threatlocker")
    for job in created["collectors"]:
        final, _ = await follow_job(client, job["job_id"])
        assert final["status"] == "completed", final["error"]
    batch = await get_json(client, f"/api/collectors/runs/batch/{created['batch_id']}")
    assert batch["status"] == "completed"

    summary = await get_json(client, "/api/inventory/summary")
    by_source = {s["source"]: s for s in summary["sources"]}
    assert by_source["ninja"]["devices"] == 120 and by_source["threatlocker"]["devices"] == 100
    assert by_source["ninja"]["last_successful_run"]["batch_id"] == created["batch_id"]
    gaps = {(c["source"], c["missing_from"]): c for c in summary["coverage"]}
    # NinjaOne knows HOST-00000..00029 that ThreatLocker does not, and ThreatLocker 00120..00129.
    assert gaps[("ninja", "threatlocker")]["devices"] == 30
    assert gaps[("ninja", "threatlocker")]["sample"][:2] == ["HOST-00000", "HOST-00001"]
    assert gaps[("threatlocker", "ninja")]["devices"] == 10
    missing = await all_devices(client, "source=threatlocker&missing_from=ninja")
    assert sorted(d["display_name"] for d in missing) == [f"HOST-{n:05d}" for n in range(120, 130)]


def test_the_collector_process_prints_no_secret_even_when_it_fails(tmp_path: Path) -> None:
    """Run the real process by hand with credentials that leak nowhere: the vendor and the
    database are unreachable, the error paths all run, stderr is checked."""
    secret = "s3cr3t-client-secret-value-4242"
    env = {
        **os.environ,
        "NINJA_CLIENT_ID": "client-id",
        "NINJA_CLIENT_SECRET": secret,
        "NINJA_BASE_URL": "http://127.0.0.1:9",
        "NINJA_MAX_RETRIES": "1",
        "NINJA_RETRY_BACKOFF": "0.01",
    }
    result = subprocess.run(
        [sys.executable, "-m", "collectors.ninja"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == EXIT_CONFIG  # retrying cannot help (docs/COLLECTORS.md, Automatic retries)
    assert "run by a runner only" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "collectors.ninja", "--check"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "ninja: FAILED: NinjaOne did not answer POST /ws/oauth/token at 127.0.0.1:9" in result.stderr
    assert secret not in result.stderr + result.stdout
