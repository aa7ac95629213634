"""Collector health (docs/COLLECTORS.md, docs/WEBHOOKS.md): the facts each ended job leaves,
the state GET /api/collectors/health and the metrics show, the alerts on each change of state
(once), job.failed, receivers that choose their events and collectors, and the test event."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from collectors.registry import VENDOR_STALE_AFTER, RegistryError, load_registry
from server.app import create_app
from server.service.openapi_document import build_openapi
from tests.support.conditions import eventually
from tests.support.database import execute, truncate
from tests.support.openapi_contract import Contract
from tests.support.settings import replace_settings
from tests.support.webhook_receivers import Receiver, start_receiver
from tests.support.webhooks import FAST

HEALTH = "/api/collectors/health"
COLLECTOR_EVENTS = ["job.failed", "collector.failing", "collector.stale", "collector.recovered"]


def collectors_file(path: Path) -> Path:
    path.write_text(
        "[collectors.flaky]\n"
        'command = ["true"]\n'
        "alert_after_failures = 2\n"
        "[collectors.idle]\n"
        'command = ["true"]\n'
        'stale_after = "1s"\n'
    )
    return path


@pytest.fixture
async def hub(aiohttp_client, settings, db, tmp_path) -> TestClient:
    await execute(db, truncate("collector_health", "webhooks", "job_batches"))
    configured = replace_settings(
        settings, collectors_file=collectors_file(tmp_path / "collectors.toml"), health_interval=0.1, **FAST
    )
    return await aiohttp_client(create_app(configured))


async def end_job(client: TestClient, collector: str, status: str) -> str:
    """A batch of one job of ``collector``, ended over HTTP with ``status``; returns the job id."""
    resp = await client.post("/api/collectors/run", json={"collectors": [collector]})
    assert resp.status == 201, await resp.text()
    job_id: str = (await resp.json())["collectors"][0]["job_id"]
    report = {"status": status, **({"error": f"{collector} broke"} if status == "failed" else {})}
    resp = await client.post(f"/api/collectors/runs/job/{job_id}/progress", json=report)
    assert resp.status == 200, await resp.text()
    return job_id


def bodies(receiver: Receiver, collector: str | None = None) -> list[dict[str, Any]]:
    """What ``receiver`` was sent, in order; only about ``collector`` if given."""
    got = [json.loads(r.body) for r in receiver.received]
    return [b for b in got if collector is None or b.get("collector") == collector]


async def events_received(receiver: Receiver, count: int, collector: str | None = None) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        got = bodies(receiver, collector)
        return got if len(got) >= count else None

    return await eventually(enough, what=f"{count} webhook deliveries")


async def health_of(client: TestClient, contract: Contract, collector: str) -> dict[str, Any]:
    answer = await contract.call(client, "GET", HEALTH, 200)
    [entry] = [e for e in answer["collectors"] if e["collector"] == collector]
    return entry


async def test_failures_recovery_and_staleness_alert_once_each_and_only_whom_they_concern(hub, aiohttp_server):
    contract = Contract(build_openapi(["cross-vendor-checks", "demo", "flaky", "idle", "ninja", "threatlocker"]))
    alerts, batches = await start_receiver(aiohttp_server), await start_receiver(aiohttp_server)
    body = {"url": alerts.url, "events": COLLECTOR_EVENTS, "collectors": ["flaky", "idle"]}
    alerts_hook = await contract.call(hub, "POST", "/api/webhooks", 201, json=body)
    assert alerts_hook["collectors"] == ["flaky", "idle"]
    batches_hook = await contract.call(hub, "POST", "/api/webhooks", 201, json={"url": batches.url})
    assert batches_hook["events"] == ["batch.completed"] and batches_hook["collectors"] is None

    # One failure of flaky: a job.failed event, but not yet failing (alert_after_failures = 2).
    first = await end_job(hub, "flaky", "failed")
    [job_failed] = await events_received(alerts, 1, "flaky")
    assert job_failed["type"] == "job.failed" and job_failed["job_id"] == first
    assert job_failed["status"] == "failed" and job_failed["error"] == "flaky broke"
    entry = await health_of(hub, contract, "flaky")
    assert (entry["state"], entry["consecutive_failures"], entry["alert_after_failures"]) == ("healthy", 1, 2)

    second = await end_job(hub, "flaky", "failed")
    got = await events_received(alerts, 3, "flaky")
    failing = [b for b in got if b["type"] == "collector.failing"]
    assert [b["job_id"] for b in got if b["type"] == "job.failed"] == [first, second]
    assert len(failing) == 1
    assert failing[0]["collector"] == "flaky" and failing[0]["previous_state"] == "healthy"
    assert failing[0]["consecutive_failures"] == 2 and failing[0]["last_error"] == "flaky broke"
    contract.check_body({"$ref": "#/components/schemas/CollectorHealthChange"}, _fields(failing[0]), "event")
    entry = await health_of(hub, contract, "flaky")
    assert entry["state"] == "failing" and entry["state_since"] is not None and entry["last_success_at"] is None

    # A third failure changes nothing: no second collector.failing.
    await end_job(hub, "flaky", "failed")
    await events_received(alerts, 4, "flaky")
    await end_job(hub, "flaky", "completed")
    got = await events_received(alerts, 5, "flaky")
    recovered = got[-1]
    assert recovered["type"] == "collector.recovered" and recovered["previous_state"] == "failing"
    assert recovered["state"] == "healthy" and recovered["consecutive_failures"] == 0
    entry = await health_of(hub, contract, "flaky")
    assert entry["state"] == "healthy" and entry["last_success_age_seconds"] >= 0

    # idle has never succeeded: stale one second after the hub first saw it, then recovers (and
    # is stale again a second after that success: its changes alternate, each alerted once).
    stale = await eventually(lambda: _first_of(alerts, "collector.stale"), what="collector.stale for idle", timeout=20)
    assert stale["collector"] == "idle" and stale["stale_after_seconds"] == 1
    assert (await health_of(hub, contract, "idle"))["state"] == "stale"
    await end_job(hub, "idle", "completed")
    await eventually(lambda: _first_of(alerts, "collector.recovered", collector="idle"), what="idle recovered")

    # demo is not among the collectors this receiver chose: its failure says nothing to it.
    await end_job(hub, "demo", "failed")
    await end_job(hub, "flaky", "completed")  # a batch that ends completed, heard by the other receiver
    await events_received(batches, 3)
    assert {b["type"] for b in bodies(batches)} == {"batch.completed"}
    assert not [b for b in bodies(alerts) if b.get("collector") == "demo"]
    flaky = Counter(b["type"] for b in bodies(alerts, "flaky"))
    assert flaky == {"job.failed": 3, "collector.failing": 1, "collector.recovered": 1}
    idle = [b["type"] for b in bodies(alerts, "idle")]
    assert idle[:2] == ["collector.stale", "collector.recovered"]
    assert all(a != b for a, b in itertools.pairwise(idle)), idle
    # Every delivery came once, under its own id.
    assert len(set(alerts.ids())) == len(alerts.received)
    assert all(b["delivery_id"] == r.delivery_id for b, r in zip(bodies(alerts), alerts.received, strict=True))


def _fields(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("type", "delivery_id", "timestamp")}


async def _first_of(receiver: Receiver, event: str, collector: str | None = None) -> dict[str, Any] | None:
    for body in bodies(receiver):
        if body["type"] == event and (collector is None or body["collector"] == collector):
            return body
    return None


async def test_a_test_event_is_signed_and_marked_and_bad_requests_change_nothing(hub, aiohttp_server, db):
    contract = Contract(build_openapi(["cross-vendor-checks", "demo", "flaky", "idle", "ninja", "threatlocker"]))
    receiver = await start_receiver(aiohttp_server)
    created = await contract.call(hub, "POST", "/api/webhooks", 201, json={"url": receiver.url})
    path = {"webhook_id": created["id"]}
    test = "/api/webhooks/{webhook_id}/test"
    delivery = await contract.call(hub, "POST", test, 202, path=path, json={"event": "collector.failing"})
    assert delivery["test"] is True and delivery["event"] == "collector.failing" and delivery["batch_id"] is None
    [body] = await events_received(receiver, 1)
    assert body["type"] == "collector.failing" and body["test"] is True
    assert body["delivery_id"] == delivery["delivery_id"] == receiver.received[0].delivery_id
    assert receiver.received[0].headers["webhook-signature"].startswith("v1,")
    default = await contract.call(hub, "POST", test, 202, path=path)
    assert default["event"] == "batch.completed"

    await contract.call(hub, "POST", test, 400, path=path, json={"event": "batch.exploded"})
    await contract.call(hub, "POST", test, 400, path=path, json={"events": ["batch.completed"]})
    await contract.call(hub, "POST", test, 404, path={"webhook_id": "wh_" + "0" * 16})
    bad = {"url": receiver.url, "collectors": ["nosuch"]}
    await contract.call(hub, "POST", "/api/webhooks", 400, json=bad)
    await contract.call(hub, "PATCH", "/api/webhooks/{webhook_id}", 400, path=path, json={"collectors": []})
    changed = await contract.call(
        hub, "PATCH", "/api/webhooks/{webhook_id}", 200, path=path, json={"collectors": ["idle"], "enabled": False}
    )
    assert changed["collectors"] == ["idle"]
    await contract.call(hub, "POST", test, 409, path=path)
    rows = await _deliveries(db, created["id"])
    assert len(rows) == 2 and all(row["test"] for row in rows)


async def _deliveries(db: Any, webhook_id: str) -> list[dict[str, Any]]:
    from tests.support.database import fetch_rows

    return await fetch_rows(db, "SELECT * FROM webhook_deliveries WHERE webhook_id = %s", webhook_id)


async def test_the_metrics_show_each_collectors_state_and_last_success(hub):
    await end_job(hub, "flaky", "completed")
    await end_job(hub, "demo", "failed")
    text = await (await hub.get("/metrics")).text()
    assert 'collector_hub_collector_health{collector="demo",state="failing"} 1.0' in text
    assert 'collector_hub_collector_health{collector="demo",state="healthy"} 0.0' in text
    assert 'collector_hub_collector_health{collector="flaky",state="healthy"} 1.0' in text
    assert 'collector_hub_collector_consecutive_failures{collector="demo"} 1.0' in text
    assert 'collector_hub_collector_last_success_timestamp_seconds{collector="flaky"}' in text


def test_the_collectors_file_sets_stale_after_and_alert_after_failures(tmp_path):
    registry = load_registry(collectors_file(tmp_path / "c.toml"))
    assert (registry["flaky"].alert_after_failures, registry["flaky"].stale_after) == (2, None)
    assert (registry["idle"].alert_after_failures, registry["idle"].stale_after) == (1, 1.0)
    assert registry["ninja"].stale_after == registry["threatlocker"].stale_after == VENDOR_STALE_AFTER == 26 * 3600
    assert registry["demo"].stale_after is None
    for value, seconds in (('"26h"', 93600), ('"90m"', 5400), ('"2d"', 172800), ("600", 600), ('"1.5h"', 5400)):
        path = tmp_path / "one.toml"
        path.write_text(f'[collectors.one]\ncommand = ["true"]\nstale_after = {value}\n')
        assert load_registry(path)["one"].stale_after == seconds
    for key, value in (
        ("stale_after", '"soon"'),
        ("stale_after", "0"),
        ("stale_after", '"400d"'),
        ("stale_after", "true"),
        ("alert_after_failures", "0"),
        ("alert_after_failures", "1.5"),
        ("alert_after_failures", '"2"'),
    ):
        path = tmp_path / "bad.toml"
        path.write_text(f'[collectors.one]\ncommand = ["true"]\n{key} = {value}\n')
        with pytest.raises(RegistryError, match=key):
            load_registry(path)
