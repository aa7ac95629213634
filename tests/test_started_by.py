"""How a batch started (issue 25): every batch says so in ``started_by``, in its GET, in the
batch listing and in its live event: by hand (with the name of the stored API key it was
started with, or null), by a schedule (fired or run now: the schedule's name), or as a re-run
(the id of the batch it re-runs). Every answer is checked against the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from collectors.contract import STARTED_BY_KINDS
from server.app import create_app
from server.keys import POOL, REGISTRY, SETTINGS
from server.schedules.keys import SCHEDULE_CLOCK
from server.schedules.scheduler import Scheduler
from server.settings import Settings
from tests.support.database import truncate
from tests.support.keys import stored_key
from tests.support.openapi_contract import Contract
from tests.support.runs import set_job
from tests.support.sse_stream import SseStream

SETTINGS_KEY = "settings-admin-key-" + "s" * 24
BATCH = "/api/collectors/runs/batch/{batch_id}"
BATCHES = "/api/collectors/batches"
RUN = "/api/collectors/run"
CREATED = dt.datetime(2026, 6, 1, 9, 58, 30, tzinfo=dt.UTC)
DUE = dt.datetime(2026, 6, 1, 10, 0, 0, 300000, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clean(db: psycopg2.extensions.connection) -> Iterator[None]:
    with db.cursor() as cur:
        cur.execute(truncate("schedules", "job_batches", "api_keys"))
    yield


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Nothing runs the jobs, and the test fires the schedule itself, at a time of its choosing.
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        run_collectors=False,
        run_schedules=False,
        api_keys=(("admin", SETTINGS_KEY),),
    )


async def test_every_way_a_batch_starts_is_said_wherever_the_batch_is_shown(
    aiohttp_client: Any, settings: Settings, database_url: str, db: Any
) -> None:
    key = {"X-API-Key": stored_key(database_url, "ops-laptop")}
    app = create_app(settings)
    now = [CREATED]
    app[SCHEDULE_CLOCK] = lambda: now[0]
    client = await aiohttp_client(app)
    contract = Contract(await (await client.get("/api/openapi.json", headers=key)).json())

    async def run(headers: dict[str, str]) -> str:
        created = await contract.call(client, "POST", RUN, 201, json={"collectors": ["demo"]}, headers=headers)
        return str(created["batch_id"])

    expected: dict[str, dict[str, Any]] = {}
    by_stored_key = await run(key)
    expected[by_stored_key] = {"kind": "manual", "name": "ops-laptop"}
    expected[await run({"X-API-Key": SETTINGS_KEY})] = {"kind": "manual", "name": None}  # no name to give

    schedule = {"name": "nightly", "collectors": ["demo"], "cron": "0 10 * * *", "timezone": "UTC", "overlap": "queue"}
    created = await contract.call(client, "POST", "/api/schedules", 201, json=schedule, headers=key)
    now[0] = DUE
    registry = app[REGISTRY]
    [fired] = await Scheduler(app[POOL], registry, app[SETTINGS], lambda: now[0]).tick()
    assert fired.batch_id is not None
    expected[fired.batch_id] = {"kind": "schedule", "name": "nightly"}
    path = {"schedule_id": created["schedule_id"]}
    run_now = await contract.call(client, "POST", "/api/schedules/{schedule_id}/trigger", 201, path=path, headers=key)
    expected[run_now["batch_id"]] = {"kind": "schedule", "name": "nightly"}

    with db.cursor() as cur:
        cur.execute("SELECT job_id FROM job_runs WHERE batch_id = %s", (by_stored_key,))
        [(job_id,)] = cur.fetchall()
    await set_job(db, job_id, status="failed", error="boom")
    rerun_path = BATCH + "/rerun"
    rerun = await contract.call(client, "POST", rerun_path, 201, path={"batch_id": by_stored_key}, headers=key)
    expected[rerun["batch_id"]] = {"kind": "rerun", "name": by_stored_key}

    # A deleted schedule's batches still say which one started them.
    await contract.call(client, "DELETE", "/api/schedules/{schedule_id}", 204, path=path, headers=key)

    for batch_id, started_by in expected.items():
        got = await contract.call(client, "GET", BATCH, 200, path={"batch_id": batch_id}, headers=key)
        assert got["started_by"] == started_by, batch_id
        resp = await client.get(f"/api/collectors/runs/batch/{batch_id}/events", headers=key)
        assert resp.status == 200
        stream = SseStream(resp)
        try:
            event = await stream.event()
        finally:
            stream.close()
        assert event["event"] == "batch" and json.loads(event["data"])["started_by"] == started_by, batch_id

    listing = await contract.call(client, "GET", BATCHES, 200, headers=key)
    assert {batch["batch_id"]: batch["started_by"] for batch in listing["batches"]} == expected
    assert {started["kind"] for started in expected.values()} == set(STARTED_BY_KINDS)


async def test_the_document_names_each_kind_once(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    doc = await (await client.get("/api/openapi.json", headers={"X-API-Key": SETTINGS_KEY})).json()
    schemas = doc["components"]["schemas"]
    kinds = [variant["properties"]["kind"]["const"] for variant in schemas["StartedBy"]["oneOf"]]
    assert kinds == list(STARTED_BY_KINDS)
    for shape in ("Batch", "BatchSummary"):
        assert schemas[shape]["properties"]["started_by"] == {"$ref": "#/components/schemas/StartedBy"}
        assert "started_by" in schemas[shape]["required"]
