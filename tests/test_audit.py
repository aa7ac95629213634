"""The audit trail (docs/AUDIT.md): a row for every change made through the API or the CLI,
written with the change, naming the actor's key; refused requests recorded too; never a
secret; GET /api/audit's filters and paging, checked against the OpenAPI document; retention;
``collector-hub audit``."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import jwt
import psycopg2
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.audit import store as audit_store
from server.keys import POOL
from server.security.api_keys import create_key
from server.service.openapi_document import build_openapi
from tests.support.cli import base_url, cli
from tests.support.conditions import eventually
from tests.support.database import execute, fetch_rows, truncate
from tests.support.openapi_contract import Contract
from tests.support.settings import replace_settings
from tests.support.webhook_receivers import start_receiver
from tests.support.webhooks import FAST, delivery_status

SECRET = "an-audit-test-secret-of-at-least-32-bytes"
AUDIT = "/api/audit"


@pytest.fixture(scope="module")
def keys(database_url: str) -> dict[str, tuple[str, str]]:
    """name -> (key, key id): an admin, a trigger and a read key."""
    conn = psycopg2.connect(database_url)
    try:
        made = {name: create_key(conn, name, role) for name, role in (("ops-admin", "admin"), ("viewer", "read"))}
    finally:
        conn.close()
    return {name: (key, record.key_id) for name, (key, record) in made.items()}


@pytest.fixture
async def hub(aiohttp_client, settings, db, keys) -> TestClient:
    await execute(db, truncate("audit_log", "schedules", "webhooks", "job_batches"))
    return await aiohttp_client(create_app(replace_settings(settings, jwt_secret=SECRET, **FAST)))


def as_(keys: dict[str, tuple[str, str]], name: str) -> dict[str, str]:
    return {"X-API-Key": keys[name][0]}


async def rows(db: Any, sql: str = "SELECT * FROM audit_log ORDER BY audit_id", *params: Any) -> list[dict[str, Any]]:
    return await fetch_rows(db, sql, *params)


async def test_every_change_is_recorded_with_its_actor_and_no_secret(hub, db, keys, aiohttp_server):
    contract = Contract(build_openapi(["demo", "ninja", "threatlocker"]))
    admin = as_(keys, "ops-admin")
    receiver = await start_receiver(aiohttp_server)
    shown: list[str] = []  # every secret an answer showed: none may be in the trail
    request_ids: dict[str, str] = {}

    async def do(action: str, method: str, path: str, status: int, **kwargs: Any) -> Any:
        resp = await hub.request(method, path, headers=admin, **kwargs)
        assert resp.status == status, await resp.text()
        request_ids[action] = resp.headers["X-Request-Id"]
        return await resp.json() if resp.status != 204 else None

    hook = await do("webhook.create", "POST", "/api/webhooks", 201, json={"url": receiver.url})
    shown.append(hook["secret"])
    hook_path = f"/api/webhooks/{hook['id']}"
    await do("webhook.update", "PATCH", hook_path, 200, json={"events": ["batch.completed", "job.failed"]})
    shown.append((await do("webhook.rotate_secret", "POST", hook_path + "/rotate-secret", 200))["secret"])
    test = await do("webhook.test", "POST", hook_path + "/test", 202, json={"event": "job.failed"})
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="the test delivery to arrive")
    await do("webhook.redeliver", "POST", f"/api/webhooks/deliveries/{test['delivery_id']}/redeliver", 202)
    schedule = await do("schedule.create", "POST", "/api/schedules", 201,
                        json={"name": "nightly", "collectors": ["demo"], "cron": "0 2 * * *"})  # fmt: skip
    sch_path = f"/api/schedules/{schedule['schedule_id']}"
    await do("schedule.update", "PATCH", sch_path, 200, json={"cron": "0 3 * * *"})
    await do("schedule.pause", "PATCH", sch_path, 200, json={"enabled": False})
    await do("schedule.resume", "PATCH", sch_path, 200, json={"enabled": True})
    fired = await do("schedule.run_now", "POST", sch_path + "/trigger", 201)
    await do("schedule.delete", "DELETE", sch_path, 204)
    await do("webhook.delete", "DELETE", hook_path, 204)
    batch = await do("run.trigger", "POST", "/api/collectors/run", 201, json={"collectors": ["demo", "ninja"]})
    batch_path = f"/api/collectors/runs/batch/{batch['batch_id']}"
    await do("batch.cancel", "POST", batch_path + "/cancel", 200)
    again = await do("batch.rerun", "POST", batch_path + "/rerun", 201)
    job_path = f"/api/collectors/runs/job/{again['collectors'][0]['job_id']}"
    await do("job.cancel", "POST", job_path + "/cancel", 200)
    await do("job.rerun", "POST", job_path + "/rerun", 201)

    trail = await rows(db)
    assert [r["action"] for r in trail] == list(request_ids)
    for row in trail:
        assert (row["actor"], row["actor_kind"], row["key_id"], row["role"]) == (
            "ops-admin", "api_key", keys["ops-admin"][1], "admin"
        ), row  # fmt: skip
        assert row["outcome"] == "succeeded" and row["status"] is None
        assert row["request_id"] == request_ids[row["action"]] and row["client_address"] == "127.0.0.1"
    by_action = {r["action"]: r for r in trail}
    assert by_action["webhook.create"]["target_ids"] == [hook["id"]]
    assert by_action["webhook.test"]["target_ids"] == [hook["id"], test["delivery_id"]]
    assert by_action["webhook.redeliver"]["target_ids"] == [test["delivery_id"], hook["id"]]
    assert by_action["schedule.run_now"]["target_ids"] == [schedule["schedule_id"], fired["batch_id"]]
    assert by_action["schedule.update"]["detail"] == "changed cron"
    assert by_action["run.trigger"]["target_ids"] == [batch["batch_id"], *(j["job_id"] for j in batch["collectors"])]
    assert by_action["batch.rerun"]["target_ids"][:2] == [batch["batch_id"], again["batch_id"]]
    assert by_action["job.cancel"]["target_ids"] == [again["collectors"][0]["job_id"]]

    # GET /api/audit shows the same rows, newest first, as the document says.
    page = await contract.call(hub, "GET", AUDIT, 200, headers=admin)
    assert [e["id"] for e in page["entries"]] == [r["audit_id"] for r in reversed(trail)]
    dumped = json.dumps(page) + json.dumps([{k: str(v) for k, v in r.items()} for r in trail])
    for secret in [*shown, keys["ops-admin"][0], keys["viewer"][0]]:
        assert secret not in dumped


async def test_refused_requests_are_recorded_with_who_asked_and_why(hub, db, keys):
    resp = await hub.post("/api/schedules", json={"name": "x", "collectors": ["demo"], "cron": "0 2 * * *"},
                          headers=as_(keys, "viewer"))  # fmt: skip
    assert resp.status == 403
    resp = await hub.delete("/api/webhooks/wh_0123456789abcdef", headers={"X-API-Key": "chk_0123456789ab_" + "A" * 43})
    assert resp.status == 401
    token = jwt.encode({"sub": "alice@example.com", "role": "admin", "exp": int(time.time()) + 300}, SECRET)
    resp = await hub.post("/api/schedules", json={"name": "bad", "cron": "0 2 * * *"},
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert resp.status == 400
    resp = await hub.post("/api/collectors/run", json={"collectors": ["nosuch"]})
    assert resp.status == 401
    trail = await rows(db)
    summary = [(r["action"], r["outcome"], r["status"], r["actor"], r["actor_kind"], r["key_id"]) for r in trail]
    assert summary == [
        ("schedule.create", "refused", 403, "viewer", "api_key", keys["viewer"][1]),
        ("webhook.delete", "refused", 401, "anonymous", "anonymous", "0123456789ab"),
        ("schedule.create", "refused", 400, "jwt alice@example.com", "jwt", None),
        ("run.trigger", "refused", 401, "anonymous", "anonymous", None),
    ]
    assert trail[0]["detail"] == "This needs the admin role; these credentials grant read"
    assert trail[1]["detail"] == "invalid API key" and trail[1]["target_ids"] == ["wh_0123456789abcdef"]
    assert "collectors" in trail[2]["detail"] and trail[2]["role"] == "admin"
    assert token not in json.dumps([{k: str(v) for k, v in r.items()} for r in trail])
    # Reads are not changes: nothing more is recorded for them.
    assert (await hub.get("/api/schedules", headers=as_(keys, "viewer"))).status == 200
    assert len(await rows(db)) == len(trail)


async def test_the_listing_filters_and_pages_and_is_for_admins_only(hub, db, keys):
    contract = Contract(build_openapi(["demo", "ninja", "threatlocker"]))
    admin = as_(keys, "ops-admin")
    for i in range(5):
        body = {"name": f"s{i}", "collectors": ["demo"], "cron": "0 2 * * *"}
        assert (await hub.post("/api/schedules", json=body, headers=admin)).status == 201
    assert (await hub.post("/api/schedules", json={"name": "s9"}, headers=as_(keys, "viewer"))).status == 403
    everything = (await contract.call(hub, "GET", AUDIT, 200, headers=admin))["entries"]
    assert len(everything) == 6
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await contract.call(hub, "GET", AUDIT, 200, headers=admin, params=params)
        seen += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything

    async def ids(**params: str) -> list[int]:
        page = await contract.call(hub, "GET", AUDIT, 200, headers=admin, params=params)
        return [e["id"] for e in page["entries"]]

    assert await ids(actor="viewer") == [everything[0]["id"]]
    assert await ids(outcome="succeeded") == [e["id"] for e in everything[1:]]
    assert len(await ids(action="schedule.")) == 6 and await ids(action="webhook.") == []
    target = everything[3]["target_ids"][0]
    assert await ids(target=target) == [everything[3]["id"]]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await ids(since=future) == [] and len(await ids(until=future)) == 6
    for bad in ({"limit": "0"}, {"cursor": "abc"}, {"outcome": "maybe"}, {"action": "DROP TABLE"}, {"nope": "1"}):
        await contract.call(hub, "GET", AUDIT, 400, headers=admin, params=bad)
    assert (await hub.get(AUDIT, headers=as_(keys, "viewer"))).status == 403


async def test_retention_removes_old_rows_only(hub, db):
    await execute(db, "INSERT INTO audit_log (at, actor, actor_kind, action, outcome) VALUES"
                      " (now() - interval '10 days', 'old', 'system', 'schedule.fire', 'succeeded'),"
                      " (now(), 'new', 'system', 'schedule.fire', 'succeeded')")  # fmt: skip
    # A cutoff housekeeping (365 days here) would not apply itself, so the count is this call's.
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=5)
    assert await audit_store.delete_older_than(hub.app[POOL], cutoff, 100) == 1
    assert [r["actor"] for r in await rows(db)] == ["new"]


async def test_key_commands_and_the_audit_command(hub, db, keys, database_url):
    code, _, err = await cli("keys", "create", "--role", "read", "--name", "dash", "--database-url", database_url)
    assert code == 0, err
    code, _, err = await cli("keys", "revoke", "nosuch", "--database-url", database_url)
    assert code == 2
    code, _, err = await cli("keys", "revoke", "dash", "--database-url", database_url)
    assert code == 0, err
    trail = await rows(db)
    assert [(r["action"], r["outcome"], r["actor_kind"]) for r in trail] == [
        ("api_key.create", "succeeded", "cli"),
        ("api_key.revoke", "refused", "cli"),
        ("api_key.revoke", "succeeded", "cli"),
    ]
    assert all(r["actor"].startswith("cli ") for r in trail) and trail[0]["target_ids"] == trail[2]["target_ids"]
    assert trail[1]["detail"].startswith("no live key") and trail[1]["target_ids"] == ["nosuch"]

    url = base_url(hub.server)
    admin_key = keys["ops-admin"][0]
    code, out, err = await cli(
        "audit", "--url", url, "--action", "api_key.", "--json", env={"COLLECTOR_HUB_API_KEY": admin_key}
    )
    assert code == 0, err
    printed = [json.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in printed] == ["api_key.revoke", "api_key.revoke", "api_key.create"]
    code, out, err = await cli("audit", "--url", url, "--limit", "1", env={"COLLECTOR_HUB_API_KEY": admin_key})
    assert code == 0 and len(out.splitlines()) == 1 and "api_key.revoke" in out and "by cli " in out
    code, _, err = await cli("audit", "--url", url, env={"COLLECTOR_HUB_API_KEY": keys["viewer"][0]})
    assert code == 1 and "403" in err
