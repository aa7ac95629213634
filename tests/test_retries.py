"""Automatic retries (docs/COLLECTORS.md, "Automatic retries"): a real runner in the app, real
collector processes, a real webhook receiver."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from collectors.contract import EXIT_CONFIG, EXIT_TEMPFAIL
from collectors.inventory_run import exit_code_for
from collectors.inventory_store import RunRefused
from collectors.registry import RegistryError, load_registry
from collectors.vendor_http import VendorAuthError, VendorMalformed, VendorStatusError, VendorUnavailable
from collectors.vendor_settings import VendorSettingsError
from server.app import create_app
from server.settings import Settings
from tests.fakes.common import Fault, serve
from tests.fakes.ninja import FakeNinja
from tests.support.collectors_file import program, write_collectors_file
from tests.support.conditions import eventually
from tests.support.database import fetch_row
from tests.support.inventory import ninja_env
from tests.support.runs import get_json, trigger
from tests.support.settings import replace_settings
from tests.support.webhook_receivers import Receiver, start_receiver
from tests.support.webhooks import FAST, deliveries_of, delivery_status, register


@pytest.fixture(autouse=True)
def empty_queue(db) -> None:  # type: ignore[no-untyped-def]
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches")


def failing_step(tmp_path: Path, name: str, fails: int, code: int, **entry: Any) -> dict[str, Any]:
    """tests/collector_programs/step.py failing its first ``fails`` runs with exit ``code``."""
    env = {
        "STEP_NAME": name,
        "STEP_RECORD": str(tmp_path / "record.txt"),
        "STEP_COUNT_FILE": str(tmp_path / f"{name}.count"),
        "STEP_FAILS": str(fails),
        "STEP_EXIT": str(code),
        "STEP_REASON": "NinjaOne answered 503",
    }
    return {"command": program("step"), "env": env, **entry}


@pytest.fixture
def retry_settings(settings: Settings, tmp_path: Path) -> Settings:
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "flaky": failing_step(tmp_path, "flaky", 1, 1, retries=2, retry_delay=0.3),
            "misconfigured": failing_step(tmp_path, "misconfigured", 5, 78, retries=2, retry_delay=0.3),
            "patient": failing_step(tmp_path, "patient", 5, 1, retries=2, retry_delay=600),
            "reporter": {
                "command": program("self_report"),
                "env": {"FINAL_STATUS": "failed", "EXIT_CODE": "78"},
                "retries": 2,
                "retry_delay": 0.3,
            },
            "reporter-flaky": {
                "command": program("self_report"),
                "env": {"FINAL_STATUS": "failed", "EXIT_CODE": "1"},
                "retries": 1,
                "retry_delay": 0.3,
                "retry_jitter": False,
            },
            "silent": {
                "command": program("silent"),
                "env": {"PID_FILE": str(tmp_path / "silent.pid")},
                "retries": 1,
                "retry_delay": 0,
            },
        },
    )
    return replace_settings(
        settings,
        **FAST,
        collectors_file=collectors,
        run_collectors=True,
        runner_poll_interval=0.05,
        watchdog_timeout=1.5,
        rate_limit_per_minute=0,  # the tests poll
    )


@pytest.fixture
async def hub(aiohttp_client, retry_settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    yield await aiohttp_client(create_app(retry_settings))


@pytest.fixture
async def receiver(aiohttp_server) -> Receiver:  # type: ignore[no-untyped-def]
    return await start_receiver(aiohttp_server)


async def ended(client: TestClient, job_id: str, within: float = 30) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = await get_json(client, f"/api/collectors/runs/job/{job_id}")
        return job if job["batch_status"] in ("completed", "failed", "cancelled") else None

    return await eventually(probe, timeout=within, what=f"{job_id} and its batch ended")


async def test_a_collector_that_fails_once_then_succeeds_completes_on_attempt_2_with_one_webhook(
    hub: TestClient, receiver: Receiver, db: Any, tmp_path: Path
) -> None:
    hook = await register(hub, receiver.url)
    created = await trigger(hub, "flaky")
    job_id = created["collectors"][0]["job_id"]
    job = await ended(hub, job_id)
    assert (job["status"], job["attempt"], job["max_attempts"], job["error"]) == ("completed", 2, 3, None)
    assert (tmp_path / "flaky.count").read_text() == "2"
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="the batch's webhook")
    assert len(deliveries_of(db, hook["id"])) == 1
    assert len(receiver.received) == 1
    batch = await get_json(hub, f"/api/collectors/runs/batch/{created['batch_id']}")
    assert batch["collectors"][0]["attempt"] == 2
    # Both attempts' lines stay in the log, the second after the runner's note.
    log = await get_json(hub, f"/api/collectors/runs/job/{job_id}/logs")
    texts = [line["text"] for line in log["lines"]]
    note = next(i for i, text in enumerate(texts) if re.fullmatch(r"Runner \S+ starts attempt 2 of 3", text))
    assert "NinjaOne answered 503" in texts[:note]
    assert any(text.startswith("Collector exited with code 1") for text in texts[:note])
    assert any(text.startswith("Collector exited with code 0") for text in texts[note:])


async def test_exit_78_fails_at_once(hub: TestClient, tmp_path: Path) -> None:
    created = await trigger(hub, "misconfigured")
    job = await ended(hub, created["collectors"][0]["job_id"])
    assert (job["status"], job["attempt"], job["max_attempts"]) == ("failed", 1, 3)
    assert "Exited with code 78" in job["error"] and "NinjaOne answered 503" in job["error"]
    assert (tmp_path / "misconfigured.count").read_text() == "1"


async def test_a_collector_that_reports_failed_itself_is_decided_by_its_exit_code(hub: TestClient) -> None:
    created = await trigger(hub, "reporter")
    job = await ended(hub, created["collectors"][0]["job_id"])
    assert (job["status"], job["attempt"], job["error"]) == ("failed", 1, "Reported failed by the collector")

    created = await trigger(hub, "reporter-flaky")
    job = await ended(hub, created["collectors"][0]["job_id"])
    # The last attempt's own report is final, as without retries.
    assert (job["status"], job["attempt"], job["max_attempts"]) == ("failed", 2, 2)
    assert job["error"] == "Reported failed by the collector"


async def test_cancel_during_the_wait_cancels_at_once(hub: TestClient, tmp_path: Path) -> None:
    created = await trigger(hub, "patient")
    job_id = created["collectors"][0]["job_id"]

    async def waiting() -> dict[str, Any] | None:
        job: dict[str, Any] = await get_json(hub, f"/api/collectors/runs/job/{job_id}")
        return job if job["attempt"] == 2 else None

    job = await eventually(waiting, what="the wait before attempt 2")
    assert job["status"] == "queued"
    match = re.fullmatch(r"Attempt 2 of 3 in (\d+) s \(last: NinjaOne answered 503\)", job["message"])
    assert match is not None, job["message"]
    assert 450 <= int(match[1]) <= 600  # 600 s, jittered down by at most a quarter
    assert job["batch_status"] == "queued"  # not ended: no webhook, no end in the batch's progress
    response = await hub.post(f"/api/collectors/runs/job/{job_id}/cancel")
    assert response.status == 200
    cancelled = await response.json()
    assert (cancelled["status"], cancelled["batch_status"], cancelled["attempt"]) == ("cancelled", "cancelled", 2)
    assert (tmp_path / "patient.count").read_text() == "1"


async def test_the_watchdog_failing_an_attempt_counts_as_a_failed_attempt(hub: TestClient) -> None:
    created = await trigger(hub, "silent")
    job = await ended(hub, created["collectors"][0]["job_id"], within=60)
    assert (job["status"], job["attempt"], job["max_attempts"]) == ("failed", 2, 2)
    assert job["message"] == "Stopped by the watchdog"
    log = await get_json(hub, f"/api/collectors/runs/job/{job['job_id']}/logs")
    assert sum(line["text"].startswith("Runner ") and " started pid " in line["text"] for line in log["lines"]) == 2


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"retries": -1}, "retries must be an integer from 0 to 100"),
        ({"retries": 1.5}, "retries must be an integer from 0 to 100"),
        ({"retry_delay": -1}, "retry_delay must be seconds from 0 to 86400"),
        ({"retry_backoff": 0.5}, "retry_backoff must be a number from 1 to 10"),
        ({"retry_max_delay": "10m"}, "retry_max_delay must be seconds from 0 to 86400"),
        ({"retry_jitter": "yes"}, "retry_jitter must be true or false"),
        ({"no_retry_exit_codes": [1, "x"]}, "no_retry_exit_codes must be a list of exit codes from 1 to 255"),
        ({"no_retry_exit_codes": [0]}, "no_retry_exit_codes must be a list of exit codes from 1 to 255"),
    ],
)
def test_the_collectors_file_refuses_bad_retry_settings(tmp_path: Path, entry: dict[str, Any], problem: str) -> None:
    path = write_collectors_file(tmp_path / "collectors.toml", {"x1": {"command": ["true"], **entry}})
    with pytest.raises(RegistryError, match=problem):
        load_registry(path)


def test_vendor_collectors_retry_twice_by_default_and_custom_ones_not_at_all(tmp_path: Path) -> None:
    path = write_collectors_file(
        tmp_path / "collectors.toml",
        {"ninja": {"command": ["python", "-m", "collectors.ninja"]}, "x1": {"command": ["true"]}},
    )
    registry = load_registry(path)
    assert (registry["ninja"].retries, registry["threatlocker"].retries, registry["x1"].retries) == (2, 2, 0)
    assert registry["x1"].no_retry_exit_codes == (78,)
    assert load_registry(path, vendor_retries=0)["ninja"].retries == 0


def test_vendor_errors_map_to_exit_codes_retrying_can_or_cannot_fix() -> None:
    assert exit_code_for(VendorSettingsError("NINJA_CLIENT_ID missing")) == EXIT_CONFIG
    assert exit_code_for(VendorAuthError("NinjaOne refused the credentials", 401)) == EXIT_CONFIG
    assert exit_code_for(VendorStatusError("NinjaOne refused GET /devices (HTTP 404)", 404)) == EXIT_CONFIG
    assert exit_code_for(VendorUnavailable("NinjaOne did not answer after 4 attempt(s): HTTP 503")) == EXIT_TEMPFAIL
    assert exit_code_for(VendorMalformed("not JSON")) == EXIT_TEMPFAIL
    assert exit_code_for(RunRefused("another run")) == EXIT_TEMPFAIL
    assert exit_code_for(KeyError("x")) == 1


async def test_the_ninja_collector_is_retried_after_503s_and_not_after_refused_credentials(
    aiohttp_client, settings: Settings, tmp_path: Path, db: Any
) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNinja(devices=30)
    async with serve(fake.app(), fake.faults) as url:
        entries = {
            "ninja": {
                "command": [sys.executable, "-m", "collectors.ninja"],
                "env": ninja_env(fake, url),
                "retry_delay": 0.3,  # and the vendor default of two retries
            },
            "ninja-bad": {
                "command": [sys.executable, "-m", "collectors.ninja"],
                "env": ninja_env(fake, url, NINJA_CLIENT_SECRET="wrong"),
                "retry_delay": 0.3,
            },
        }
        collectors = write_collectors_file(tmp_path / "collectors.toml", entries)
        hub = await aiohttp_client(
            create_app(
                replace_settings(
                    settings,
                    collectors_file=collectors,
                    run_collectors=True,
                    runner_poll_interval=0.05,
                    rate_limit_per_minute=0,
                    vendor_retries=2,  # the default (the shared test settings turn it off)
                )
            )
        )
        # More 503s than the client's own retries (FAST_HTTP: 3): the first attempt gives up.
        fake.faults.add(Fault("/organizations", status=503, times=4))
        created = await trigger(hub, "ninja")
        job = await ended(hub, created["collectors"][0]["job_id"], within=60)
        assert (job["status"], job["attempt"], job["max_attempts"]) == ("completed", 2, 3), job

        created = await trigger(hub, "ninja-bad")
        job = await ended(hub, created["collectors"][0]["job_id"], within=60)
        assert (job["status"], job["attempt"]) == ("failed", 1), job
        assert "rejected the client credentials" in job["error"]
        row = await fetch_row(db, "SELECT exit_code FROM job_runs WHERE job_id = %s", job["job_id"])
        assert row is not None and row["exit_code"] == EXIT_CONFIG


@pytest.mark.parametrize(
    ("collector", "variables"),
    [
        ("ninja", "NINJA_CLIENT_ID and NINJA_CLIENT_SECRET"),
        ("threatlocker", "THREATLOCKER_BASE_URL and THREATLOCKER_API_TOKEN"),
    ],
)
def test_a_vendor_collector_without_credentials_exits_78_naming_them(collector: str, variables: str) -> None:
    """A runner without the credentials never starts it (tests/test_runner_routing.py); run by
    hand, or with credentials that are blank where it runs, it says which are missing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NINJA_", "THREATLOCKER_"))}
    result = subprocess.run(
        [sys.executable, "-m", f"collectors.{collector}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_CONFIG
    assert f"credentials not configured (set {variables} in the environment" in result.stderr
