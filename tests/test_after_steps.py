"""Steps that run after others in a batch (docs/COLLECTORS.md, "Steps that run after others"):
real runners, real collector processes, the claim in SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from collectors.registry import CROSS_VENDOR_CHECKS, RegistryError, load_registry
from server.app import create_app
from server.db.database import create_pool
from server.runs import queue
from server.settings import Settings
from tests.fakes.common import Fault, serve
from tests.fakes.ninja import FakeNinja
from tests.fakes.threatlocker import FakeThreatLocker
from tests.support.collectors_file import program, write_collectors_file
from tests.support.conditions import eventually
from tests.support.database import fetch_rows
from tests.support.inventory import empty_inventory, ninja_env, threatlocker_env, vendor_collectors
from tests.support.runner import started_runner
from tests.support.runs import get_json, trigger
from tests.support.settings import replace_settings


@pytest.fixture(autouse=True)
def empty_queue(db) -> None:  # type: ignore[no-untyped-def]
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches")


def step(tmp_path: Path, name: str, **env: str) -> dict[str, Any]:
    return {
        "command": program("step"),
        "env": {"STEP_NAME": name, "STEP_RECORD": str(tmp_path / "record.txt"), **env},
    }


def events(tmp_path: Path) -> list[str]:
    path = tmp_path / "record.txt"
    return [" ".join(line.split()[:2]) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def steps_settings(settings: Settings, tmp_path: Path) -> Settings:
    """alpha and beta wait for their gate files (beta then fails), bad fails at once; gamma
    runs after them if any succeeded, delta after alpha and beta only if both did."""
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "alpha": step(tmp_path, "alpha", STEP_GATE=str(tmp_path / "gate-a")),
            "beta": step(tmp_path, "beta", STEP_GATE=str(tmp_path / "gate-b"), STEP_EXIT="1"),
            "bad": step(tmp_path, "bad", STEP_EXIT="1"),
            "gamma": {
                **step(tmp_path, "gamma"),
                "after": ["alpha", "beta", "bad"],
                "run_if": "any_succeeded",
                "id_prefix": "zc",
            },
            "delta": {**step(tmp_path, "delta"), "after": ["alpha", "beta"], "run_if": "all_succeeded"},
        },
    )
    return replace_settings(settings, collectors_file=collectors, runner_poll_interval=0.05)


@pytest.fixture
async def hub(aiohttp_client, steps_settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    yield await aiohttp_client(create_app(steps_settings))


async def job_of(client: TestClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = await get_json(client, f"/api/collectors/runs/job/{job_id}")
    return job


async def status_is(client: TestClient, job_id: str, *statuses: str) -> dict[str, Any] | None:
    job = await job_of(client, job_id)
    return job if job["status"] in statuses else None


async def test_a_step_waits_for_the_jobs_it_runs_after_then_runs_with_two_runners(
    hub: TestClient, steps_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        for n in (1, 2):
            await stack.enter_async_context(started_runner(steps_settings, database_url, runner_id=f"steps-{n}"))
        created = await trigger(hub, "alpha", "beta", "gamma")
        a, b, c = (job["job_id"] for job in created["collectors"])
        assert c.startswith("zc_")  # the collector's own id prefix
        await eventually(lambda: status_is(hub, a, "running"), what="a running")
        await eventually(lambda: status_is(hub, b, "running"), what="b running")
        waiting = await job_of(hub, c)
        assert waiting["status"] == "queued"
        assert (
            waiting["message"] == "Waiting for alpha, beta to end (then runs if any succeeded)"
        )  # bad is not in the batch
        batch = await get_json(hub, f"/api/collectors/runs/batch/{created['batch_id']}")
        assert batch["message"] == "Processing collectors: 0 of 3 finished, 2 running, 1 queued"

        (tmp_path / "gate-a").touch()
        await eventually(lambda: status_is(hub, a, "completed"), what="a completed")
        # b still runs: the claim itself refuses c, whoever asks for it.
        async with create_pool(database_url, 1, 1) as pool:
            assert await queue.claim_jobs(pool, 5, "probe", "probe-host", ["gamma"]) == []
        assert (await job_of(hub, c))["status"] == "queued"

        (tmp_path / "gate-b").touch()
        done = await eventually(lambda: status_is(hub, c, "completed", "failed", "cancelled"), what="c ended")
        assert done["status"] == "completed", done
        assert (await job_of(hub, b))["status"] == "failed"
    order = events(tmp_path)
    assert order.index("gamma start") > order.index("alpha end")
    assert order.index("gamma start") > order.index("beta end")
    assert order.count("gamma start") == 1


async def test_when_its_condition_fails_the_step_is_cancelled_saying_why(
    hub: TestClient, steps_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "gate-a").touch()
    (tmp_path / "gate-b").touch()
    async with started_runner(steps_settings, database_url):
        created = await trigger(hub, "beta", "bad", "gamma")
        c = created["collectors"][2]["job_id"]
        ended = await eventually(lambda: status_is(hub, c, "completed", "failed", "cancelled"), what="c ended")
        assert ended["status"] == "cancelled"
        assert ended["message"] == "Not run: no collector succeeded (beta failed, bad failed)"
        batch = await get_json(hub, f"/api/collectors/runs/batch/{created['batch_id']}")
        assert batch["status"] == "failed"

        created = await trigger(hub, "alpha", "beta", "delta")
        d = created["collectors"][2]["job_id"]
        ended = await eventually(lambda: status_is(hub, d, "completed", "failed", "cancelled"), what="d ended")
        assert ended["status"] == "cancelled"
        assert ended["message"] == "Not run: not every collector it runs after succeeded (alpha completed, beta failed)"
    assert "gamma start" not in events(tmp_path)
    assert "delta start" not in events(tmp_path)


async def test_a_collector_absent_from_the_batch_does_not_block_the_step(
    hub: TestClient, steps_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    created = await trigger(hub, "gamma")
    assert created["collectors"][0]["status"] == "queued"
    assert (await job_of(hub, created["collectors"][0]["job_id"]))["message"] == "Queued"
    async with started_runner(steps_settings, database_url):
        ended = await eventually(
            lambda: status_is(hub, created["collectors"][0]["job_id"], "completed", "failed", "cancelled"),
            what="c ended",
        )
    assert ended["status"] == "completed"
    assert events(tmp_path) == ["gamma start", "gamma end"]


async def test_cancelling_a_batch_cancels_its_waiting_step(hub: TestClient, steps_settings: Settings) -> None:
    created = await trigger(hub, "alpha", "gamma")
    response = await hub.post(f"/api/collectors/runs/batch/{created['batch_id']}/cancel")
    assert response.status == 200
    body = await response.json()
    assert [job["status"] for job in body["collectors"]] == ["cancelled", "cancelled"]
    assert body["collectors"][1]["message"] == "Cancelled by request"


@pytest.fixture
async def vendor_hub(aiohttp_client, settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    yield await aiohttp_client(create_app(replace_settings(settings, cross_vendor_by_default=True)))


async def test_a_batch_with_a_vendor_collector_gets_the_cross_vendor_checks_unless_told_otherwise(
    vendor_hub: TestClient,
) -> None:
    created = await trigger(vendor_hub, "ninja", "demo")
    assert [job["collector"] for job in created["collectors"]] == ["ninja", "demo", CROSS_VENDOR_CHECKS]
    checks = created["collectors"][2]
    assert checks["job_id"].startswith("cv_")
    assert checks["job_name"] == CROSS_VENDOR_CHECKS
    assert (await job_of(vendor_hub, checks["job_id"]))["message"] == (
        "Waiting for ninja to end (then runs if any succeeded)"
    )
    for body, expected in (
        ({"collectors": ["ninja"], "run_cross_vendor": False}, ["ninja"]),
        ({"collectors": ["demo"]}, ["demo"]),
        ({"collectors": ["demo"], "run_cross_vendor": True}, ["demo", CROSS_VENDOR_CHECKS]),
        ({"collectors": [CROSS_VENDOR_CHECKS, "threatlocker"]}, [CROSS_VENDOR_CHECKS, "threatlocker"]),
    ):
        response = await vendor_hub.post("/api/collectors/run", json=body)
        assert response.status == 201, await response.text()
        assert [job["collector"] for job in (await response.json())["collectors"]] == expected
    for bad in ("yes", None, 1):
        response = await vendor_hub.post("/api/collectors/run", json={"collectors": ["ninja"], "run_cross_vendor": bad})
        assert response.status == 400
        assert (await response.json()) == {"error": "run_cross_vendor must be true or false"}


async def test_the_default_follows_the_setting(client: TestClient) -> None:
    """The shared test settings turn the default off (tests/conftest.py); a body still asks."""
    created = await trigger(client, "ninja")
    assert [job["collector"] for job in created["collectors"]] == ["ninja"]


async def test_the_cross_vendor_endpoint_starts_the_checks_alone(vendor_hub: TestClient) -> None:
    response = await vendor_hub.post("/api/collectors/cross-vendor/run")
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["success"] is True
    assert body["job_id"].startswith("cv_")
    assert [job["job_id"] for job in body["collectors"]] == [body["job_id"]]
    batch = await get_json(vendor_hub, f"/api/collectors/runs/batch/{body['batch_id']}")
    assert batch["collectors"][0]["message"] == "Queued"
    response = await vendor_hub.post(
        "/api/collectors/cross-vendor/run", json={"force_refresh": True, "priority": "high"}
    )
    assert response.status == 201
    assert (await response.json())["priority"] == "high"
    for bad in ({"force_refresh": "yes"}, {"priority": "urgent"}, {"collectors": ["ninja"]}):
        response = await vendor_hub.post("/api/collectors/cross-vendor/run", json=bad)
        assert response.status == 400, bad
        assert "error" in await response.json()


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({"x1": {"after": ["nope"]}}, "after names unknown collectors: nope"),
        ({"x1": {"after": ["x1"]}}, "must be a list of at most"),
        ({"x1": {"after": ["demo", "demo"]}}, "must be a list of at most"),
        ({"x1": {"after": "demo"}}, "must be a list of at most"),
        ({"x1": {"after": ["x2"]}, "x2": {"after": ["x1"]}}, "in a cycle: x1 -> x2 -> x1"),
        ({"x1": {"run_if": "sometimes"}}, "run_if must be one of any_succeeded, all_succeeded, always"),
        ({"x1": {"id_prefix": "c"}}, "id_prefix must be two lower-case letters or digits"),
        ({"x1": {"id_prefix": "C_"}}, "id_prefix must be two lower-case letters or digits"),
    ],
)
def test_the_collectors_file_refuses_a_bad_order(tmp_path: Path, entries: dict[str, Any], problem: str) -> None:
    path = write_collectors_file(
        tmp_path / "collectors.toml", {name: {"command": ["true"], **entry} for name, entry in entries.items()}
    )
    with pytest.raises(RegistryError, match=problem.replace("(", r"\(")):
        load_registry(path)


def test_the_built_in_checks_run_after_both_vendors() -> None:
    spec = load_registry()[CROSS_VENDOR_CHECKS]
    assert (spec.after, spec.run_if, spec.id_prefix, spec.display_name) == (
        ("ninja", "threatlocker"),
        "any_succeeded",
        "cv",
        CROSS_VENDOR_CHECKS,
    )


async def test_a_vendor_batch_runs_the_cross_vendor_checks_after_both_collectors(
    aiohttp_client, settings: Settings, tmp_path: Path, db: Any
) -> None:  # type: ignore[no-untyped-def]
    """Issue 22's "done": ninja and threatlocker against the fakes, the built-in checks (the
    real collectors.cross_vendor_checks) added to the batch and started after both ended; and
    cancelled, saying why, when both collectors fail."""
    empty_inventory(db)
    ninja, threatlocker = FakeNinja(devices=20), FakeThreatLocker(computers=15)
    async with serve(ninja.app(), ninja.faults) as ninja_url, serve(threatlocker.app(), threatlocker.faults) as tl_url:
        envs = {"ninja": ninja_env(ninja, ninja_url), "threatlocker": threatlocker_env(threatlocker, tl_url)}
        collectors = write_collectors_file(tmp_path / "collectors.toml", vendor_collectors(envs, 60))
        app = create_app(
            replace_settings(
                settings,
                collectors_file=collectors,
                run_collectors=True,
                runner_poll_interval=0.05,
                rate_limit_per_minute=0,
                cross_vendor_by_default=True,
            )
        )
        client = await aiohttp_client(app)
        created = await trigger(client, "ninja", "threatlocker")
        checks = created["collectors"][2]
        assert checks["collector"] == CROSS_VENDOR_CHECKS and checks["job_id"].startswith("cv_")
        job = await eventually(
            lambda: status_is(client, checks["job_id"], "completed", "failed", "cancelled"), timeout=90, what="checks"
        )
        assert job["status"] == "completed", job
        rows = await fetch_rows(
            db, "SELECT collector, run_started_at, ended_at FROM job_runs WHERE batch_id = %s", created["batch_id"]
        )
        by_name = {row["collector"]: row for row in rows}
        assert by_name[CROSS_VENDOR_CHECKS]["run_started_at"] > max(
            by_name["ninja"]["ended_at"], by_name["threatlocker"]["ended_at"]
        )

        ninja.faults.add(Fault("/ws/oauth/token", status=401, times=5))
        threatlocker.faults.add(Fault("/Computer/ComputerGetByAllParameters", status=401, times=5))
        created = await trigger(client, "ninja", "threatlocker")
        job = await eventually(
            lambda: status_is(client, created["collectors"][2]["job_id"], "completed", "failed", "cancelled"),
            timeout=90,
            what="checks",
        )
    assert job["status"] == "cancelled", job
    assert job["message"] == "Not run: no collector succeeded (ninja failed, threatlocker failed)"


def test_a_file_entry_for_a_built_in_keeps_what_it_does_not_give(tmp_path: Path) -> None:
    """docs/VARIANCES.md has operators declare cross-vendor-checks to give it env: it must still
    run after the vendors, with its own id prefix and job name, unless the entry says otherwise."""
    path = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            CROSS_VENDOR_CHECKS: {"command": ["python", "-m", "collectors.cross_vendor_checks"], "env": {"X": "1"}},
            "ninja": {"command": ["python", "-m", "collectors.ninja"], "stale_after": "2h"},
        },
    )
    registry = load_registry(path)
    checks = registry[CROSS_VENDOR_CHECKS]
    assert (checks.after, checks.run_if, checks.id_prefix, checks.display_name, dict(checks.env)) == (
        ("ninja", "threatlocker"),
        "any_succeeded",
        "cv",
        CROSS_VENDOR_CHECKS,
        {"X": "1"},
    )
    assert registry["ninja"].stale_after == 7200
    path = write_collectors_file(
        tmp_path / "collectors.toml", {CROSS_VENDOR_CHECKS: {"command": ["true"], "after": [], "run_if": "always"}}
    )
    assert (load_registry(path)[CROSS_VENDOR_CHECKS].after, load_registry(path)[CROSS_VENDOR_CHECKS].run_if) == (
        (),
        "always",
    )
