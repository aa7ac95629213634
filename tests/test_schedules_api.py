"""``/api/schedules`` over real HTTP: every answer as the OpenAPI document says, bad input
refused with nothing stored, roles, run now with the overlap policy, scheduled batches showing
their schedule, and schedules declared in the collectors file."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from aiohttp.test_utils import TestClient

from collectors.registry import RegistryError
from server.app import create_app
from server.keys import POOL, REGISTRY, SETTINGS
from server.schedules.keys import SCHEDULE_CLOCK
from server.schedules.scheduler import Scheduler
from server.settings import Settings
from tests.support.openapi_contract import Contract
from tests.support.settings import replace_settings

SCHEDULES = "/api/schedules"
SCHEDULE = "/api/schedules/{schedule_id}"
TRIGGER = "/api/schedules/{schedule_id}/trigger"
BATCH = "/api/collectors/runs/batch/{batch_id}"
NOW = dt.datetime(2026, 6, 1, 9, 58, 30, tzinfo=dt.UTC)
GOOD = {"name": "nightly", "collectors": ["demo", "ninja"], "cron": "0 2 * * *", "timezone": "America/New_York"}
READ_KEY = "read-key-" + "r" * 24
ADMIN_KEY = "admin-key-" + "a" * 24


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(autouse=True)
def clean(db: psycopg2.extensions.connection) -> Iterator[None]:
    # DELETE, not TRUNCATE: the few rows a test leaves go for well under a millisecond, where a
    # TRUNCATE makes new files for every table it reaches (about 10 ms of PostgreSQL CPU each).
    # The foreign keys cascade to the same tables (schedule_fires, job_runs, the outbox).
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches; DELETE FROM schedules")
    yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The test fires schedules itself (with the fake clock); no background scheduler.
    return Settings(database_url=database_url, data_dir=tmp_path, run_collectors=False, run_schedules=False)


Start = Callable[..., Any]


@pytest.fixture
def start(aiohttp_client, settings: Settings, clock: FakeClock) -> Start:  # type: ignore[no-untyped-def]
    async def started(**changes: Any) -> TestClient[Any, Any]:
        app = create_app(replace_settings(settings, **changes))
        app[SCHEDULE_CLOCK] = clock.__call__
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return client

    return started


@pytest.fixture
async def client(start: Start) -> AsyncIterator[TestClient[Any, Any]]:
    yield await start()


@pytest.fixture
async def contract(client: TestClient[Any, Any]) -> Contract:
    return Contract(await (await client.get("/api/openapi.json")).json())


def schedule_count(db: psycopg2.extensions.connection) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM schedules")
        return int(cur.fetchone()[0])


async def test_create_read_list_and_next_fire_times(client, contract, db) -> None:  # type: ignore[no-untyped-def]
    created = await contract.call(client, "POST", SCHEDULES, 201, json=GOOD)
    assert created["collectors"] == ["demo", "ninja"] and created["enabled"] is True
    assert (created["priority"], created["overlap"], created["catch_up"], created["source"]) == (
        "normal",
        "skip",
        "none",
        "api",
    )
    # 02:00 in New York (EDT in June) is 06:00 UTC; the first after 09:58 UTC is tomorrow's.
    assert created["next_fire_times"] == [f"2026-06-0{d}T06:00:00.000000Z" for d in range(2, 7)]
    assert created["last_batch"] is None and created["last_fire"] is None
    shown = await contract.call(client, "GET", SCHEDULE, 200, path={"schedule_id": created["schedule_id"]})
    assert shown == created
    listed = await contract.call(client, "GET", SCHEDULES, 200)
    assert listed == {"schedules": [created]}


async def test_shorthands_and_defaults(client, contract) -> None:  # type: ignore[no-untyped-def]
    hourly = await contract.call(
        client, "POST", SCHEDULES, 201, json={"name": "h", "collectors": ["demo"], "cron": "@HOURLY"}
    )
    assert hourly["cron"] == "@hourly" and hourly["timezone"] == "UTC"
    assert hourly["next_fire_times"][:2] == ["2026-06-01T10:00:00.000000Z", "2026-06-01T11:00:00.000000Z"]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"cron": "0 25 * * *"}, "cron field 2 (hour) is invalid: '25'"),
        ({"cron": "* * * *"}, "five fields"),
        ({"cron": "@sometimes"}, "shorthand"),
        ({"cron": 5}, "cron must be a non-empty string"),
        ({"timezone": "Mars/Olympus"}, "Unknown time zone 'Mars/Olympus'"),
        ({"collectors": ["demo", "nope"]}, "Unknown collector(s): 'nope'"),
        ({"collectors": []}, "collectors must be a non-empty list"),
        ({"collectors": "demo"}, "collectors must be a non-empty list"),
        ({"collectors": ["demo", "demo"]}, "more than once"),
        ({"name": "Has Spaces"}, "name must be"),
        ({"name": "x" * 65}, "name must be"),
        ({"priority": "urgent"}, "priority must be one of"),
        ({"overlap": "sometimes"}, "overlap must be one of skip, queue"),
        ({"catch_up": "all"}, "catch_up must be one of none, latest"),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"colour": "red"}, "Unknown field(s): 'colour'"),
    ],
)
async def test_bad_input_is_a_400_that_names_the_problem_and_stores_nothing(  # type: ignore[no-untyped-def]
    client, contract, db, change, complaint
) -> None:
    body = await contract.call(client, "POST", SCHEDULES, 400, json={**GOOD, **change})
    assert complaint in body["error"]
    assert schedule_count(db) == 0


@pytest.mark.parametrize("missing", ["name", "collectors", "cron"])
async def test_required_fields(client, contract, db, missing) -> None:  # type: ignore[no-untyped-def]
    body = await contract.call(client, "POST", SCHEDULES, 400, json={k: v for k, v in GOOD.items() if k != missing})
    assert missing in body["error"] and schedule_count(db) == 0


async def test_bad_bodies_and_ids(client, contract) -> None:  # type: ignore[no-untyped-def]
    await contract.call(client, "POST", SCHEDULES, 400, data=b"{not json", headers={"Content-Type": "application/json"})
    await contract.call(client, "POST", SCHEDULES, 400, json=[GOOD])
    body = await contract.call(client, "GET", SCHEDULE, 400, path={"schedule_id": "nightly"})
    assert "Malformed schedule id" in body["error"]
    await contract.call(client, "GET", SCHEDULE, 404, path={"schedule_id": "sch_" + "0" * 16})
    await contract.call(
        client, "PATCH", SCHEDULE, 404, path={"schedule_id": "sch_" + "0" * 16}, json={"enabled": False}
    )
    await contract.call(client, "DELETE", SCHEDULE, 404, path={"schedule_id": "sch_" + "0" * 16})
    await contract.call(client, "POST", TRIGGER, 404, path={"schedule_id": "sch_" + "0" * 16})


async def test_a_taken_name_is_a_409(client, contract, db) -> None:  # type: ignore[no-untyped-def]
    await contract.call(client, "POST", SCHEDULES, 201, json=GOOD)
    body = await contract.call(client, "POST", SCHEDULES, 409, json={**GOOD, "cron": "@daily"})
    assert "already exists" in body["error"] and schedule_count(db) == 1
    other = await contract.call(client, "POST", SCHEDULES, 201, json={**GOOD, "name": "other"})
    path = {"schedule_id": other["schedule_id"]}
    await contract.call(client, "PATCH", SCHEDULE, 409, path=path, json={"name": "nightly"})


async def test_patch_pause_resume_and_retime(client, contract, clock) -> None:  # type: ignore[no-untyped-def]
    created = await contract.call(client, "POST", SCHEDULES, 201, json=GOOD)
    path = {"schedule_id": created["schedule_id"]}
    paused = await contract.call(client, "PATCH", SCHEDULE, 200, path=path, json={"enabled": False})
    assert paused["enabled"] is False and paused["next_fire_times"] == []
    clock.now = dt.datetime(2026, 6, 10, 12, 0, tzinfo=dt.UTC)
    resumed = await contract.call(client, "PATCH", SCHEDULE, 200, path=path, json={"enabled": True})
    assert resumed["next_fire_times"][0] == "2026-06-11T06:00:00.000000Z"  # from the resume, not a catch-up
    retimed = await contract.call(
        client, "PATCH", SCHEDULE, 200, path=path, json={"cron": "30 7 * * *", "timezone": "UTC"}
    )
    assert retimed["next_fire_times"][0] == "2026-06-11T07:30:00.000000Z"
    body = await contract.call(client, "PATCH", SCHEDULE, 400, path=path, json={})
    assert "Nothing to change" in body["error"]
    body = await contract.call(client, "PATCH", SCHEDULE, 400, path=path, json={"cron": "0 0 31 2 *"})
    assert "day-of-month" in body["error"]
    unchanged = await contract.call(client, "GET", SCHEDULE, 200, path=path)
    assert unchanged["cron"] == "30 7 * * *"


async def test_delete(client, contract, db) -> None:  # type: ignore[no-untyped-def]
    created = await contract.call(client, "POST", SCHEDULES, 201, json=GOOD)
    path = {"schedule_id": created["schedule_id"]}
    await contract.call(client, "DELETE", SCHEDULE, 204, path=path)
    await contract.call(client, "GET", SCHEDULE, 404, path=path)
    assert schedule_count(db) == 0


async def test_run_now_records_the_schedule_and_keeps_overlap_skip(client, contract) -> None:  # type: ignore[no-untyped-def]
    created = await contract.call(client, "POST", SCHEDULES, 201, json=GOOD)
    path = {"schedule_id": created["schedule_id"]}
    batch = await contract.call(client, "POST", TRIGGER, 201, path=path)
    assert [j["collector"] for j in batch["collectors"]] == ["demo", "ninja"]
    shown = await contract.call(client, "GET", BATCH, 200, path={"batch_id": batch["batch_id"]})
    assert shown["schedule"] == {"schedule_id": created["schedule_id"], "name": "nightly", "due_at": None}
    refused = await contract.call(client, "POST", TRIGGER, 409, path=path)
    assert batch["batch_id"] in refused["error"] and "skip" in refused["error"]
    await contract.call(client, "POST", TRIGGER, 400, path=path, json={"now": True})
    await contract.call(client, "PATCH", SCHEDULE, 200, path=path, json={"overlap": "queue"})
    await contract.call(client, "POST", TRIGGER, 201, path=path)
    listed = await contract.call(client, "GET", SCHEDULE, 200, path=path)
    assert listed["last_batch"]["status"] == "queued" and listed["last_batch"]["due_at"] is None


async def test_a_fired_batch_shows_its_schedule_and_due_time(client, contract, clock) -> None:  # type: ignore[no-untyped-def]
    created = await contract.call(
        client, "POST", SCHEDULES, 201, json={**GOOD, "cron": "0 10 * * *", "timezone": "UTC"}
    )
    clock.now = dt.datetime(2026, 6, 1, 10, 0, 0, 300000, tzinfo=dt.UTC)
    app = client.app
    registry = app[REGISTRY]
    [result] = await Scheduler(app[POOL], registry, app[SETTINGS], clock).tick()
    batch = await contract.call(client, "GET", BATCH, 200, path={"batch_id": result.batch_id})
    assert batch["schedule"] == {
        "schedule_id": created["schedule_id"],
        "name": "nightly",
        "due_at": "2026-06-01T10:00:00.000000Z",
    }
    shown = await contract.call(client, "GET", SCHEDULE, 200, path={"schedule_id": created["schedule_id"]})
    assert shown["last_batch"]["batch_id"] == result.batch_id
    assert shown["last_batch"]["due_at"] == "2026-06-01T10:00:00.000000Z"
    assert shown["last_fire"]["outcome"] == "fired" and shown["last_fire"]["batch_id"] == result.batch_id
    assert shown["next_fire_times"][0] == "2026-06-02T10:00:00.000000Z"
    # Deleting the schedule leaves the batch saying which schedule started it.
    await contract.call(client, "DELETE", SCHEDULE, 204, path={"schedule_id": created["schedule_id"]})
    batch = await contract.call(client, "GET", BATCH, 200, path={"batch_id": result.batch_id})
    assert batch["schedule"]["name"] == "nightly"


async def test_read_may_list_and_only_admin_may_write(start, db) -> None:  # type: ignore[no-untyped-def]
    client = await start(api_keys=(("read", READ_KEY), ("admin", ADMIN_KEY)))
    read = {"X-API-Key": READ_KEY}
    admin = {"X-API-Key": ADMIN_KEY}
    assert (await client.post(SCHEDULES, json=GOOD, headers=read)).status == 403
    assert (await client.get(SCHEDULES)).status == 401
    resp = await client.post(SCHEDULES, json=GOOD, headers=admin)
    assert resp.status == 201
    schedule_id = (await resp.json())["schedule_id"]
    assert (await client.get(SCHEDULES, headers=read)).status == 200
    assert (await client.get(f"{SCHEDULES}/{schedule_id}", headers=read)).status == 200
    for method, path in (("PATCH", f"{SCHEDULES}/{schedule_id}"), ("DELETE", f"{SCHEDULES}/{schedule_id}"),
                         ("POST", f"{SCHEDULES}/{schedule_id}/trigger")):  # fmt: skip
        resp = await client.request(method, path, json={"enabled": False} if method == "PATCH" else None, headers=read)
        assert resp.status == 403, (method, path)
    assert schedule_count(db) == 1


def collectors_file(path: Path, schedules: str) -> Path:
    path.write_text(schedules)
    return path


async def test_schedules_declared_in_the_collectors_file(start, tmp_path, db) -> None:  # type: ignore[no-untyped-def]
    declared = collectors_file(
        tmp_path / "collectors.toml",
        '[schedules.inventory]\ncollectors = ["ninja"]\ncron = "0 3 * * *"\ntimezone = "Europe/Paris"\n'
        '[schedules.demo-often]\ncollectors = ["demo"]\ncron = "*/5 * * * *"\noverlap = "queue"\n',
    )
    client = await start(collectors_file=declared)
    listed = {s["name"]: s for s in (await (await client.get(SCHEDULES)).json())["schedules"]}
    assert set(listed) == {"inventory", "demo-often"}
    inventory = listed["inventory"]
    assert inventory["source"] == "file" and inventory["timezone"] == "Europe/Paris"
    assert inventory["next_fire_times"][0] == "2026-06-02T01:00:00.000000Z"
    path = f"{SCHEDULES}/{inventory['schedule_id']}"
    refused = await client.patch(path, json={"cron": "0 4 * * *"})
    assert refused.status == 409 and "collectors file" in (await refused.json())["error"]
    assert (await client.delete(path)).status == 409
    assert (await client.patch(path, json={"enabled": False})).status == 200  # pausing is allowed

    # A restart with the file changed: the changed one is updated (and stays paused: the
    # file's own enabled did not change), the removed one is deleted, the new one added.
    declared.write_text(
        '[schedules.inventory]\ncollectors = ["ninja", "threatlocker"]\ncron = "0 3 * * *"\ntimezone = "Europe/Paris"\n'
        '[schedules.weekly]\ncollectors = ["demo"]\ncron = "@weekly"\n'
    )
    restarted = await start(collectors_file=declared)
    listed = {s["name"]: s for s in (await (await restarted.get(SCHEDULES)).json())["schedules"]}
    assert set(listed) == {"inventory", "weekly"}
    assert listed["inventory"]["collectors"] == ["ninja", "threatlocker"]
    assert listed["inventory"]["enabled"] is False
    assert listed["inventory"]["schedule_id"] == inventory["schedule_id"]

    # The file's enabled changing wins over the pause.
    declared.write_text(
        '[schedules.inventory]\ncollectors = ["ninja"]\ncron = "0 3 * * *"\nenabled = false\n'
        '[schedules.weekly]\ncollectors = ["demo"]\ncron = "@weekly"\n'
    )
    await start(collectors_file=declared)
    declared.write_text('[schedules.inventory]\ncollectors = ["ninja"]\ncron = "0 3 * * *"\nenabled = true\n')
    again = await start(collectors_file=declared)
    listed = {s["name"]: s for s in (await (await again.get(SCHEDULES)).json())["schedules"]}
    assert set(listed) == {"inventory"} and listed["inventory"]["enabled"] is True


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[schedules.x]\ncollectors = ["demo"]\ncron = "0 24 * * *"\n', "[schedules.x]: cron field 2 (hour)"),
        ('[schedules.x]\ncollectors = ["nope"]\ncron = "@daily"\n', "[schedules.x]: Unknown collector(s): 'nope'"),
        ('[schedules.x]\ncollectors = []\ncron = "@daily"\n', "collectors must be a non-empty list"),
        ('[schedules.x]\ncollectors = ["demo"]\ncron = "@daily"\ntimezone = "Nowhere"\n', "Unknown time zone"),
        ('[schedules.X]\ncollectors = ["demo"]\ncron = "@daily"\n', "name must be"),
        ('[schedules.x]\ncollectors = ["demo"]\n', "Missing field(s): cron"),
        ("schedules = 5\n", "[schedules] must be a table"),
    ],
)
def test_a_bad_declared_schedule_stops_the_server_at_start(settings, tmp_path, text, complaint) -> None:  # type: ignore[no-untyped-def]
    declared = collectors_file(tmp_path / "collectors.toml", text)
    with pytest.raises(RegistryError) as caught:
        create_app(replace_settings(settings, collectors_file=declared))
    assert complaint in str(caught.value) and str(declared) in str(caught.value)
