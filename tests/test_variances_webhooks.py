"""Variance alerts as webhooks (docs/WEBHOOKS.md, the variance events): what a complete checks run
opened and resolved, to the receivers that chose those events, per variance or as one digest;
a first run sends digests; an incomplete run sends nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from server.app import create_app
from tests.support.conditions import eventually
from tests.support.settings import replace_settings
from tests.support.variances import baseline, check, empty_variances, ninja, threatlocker, write_source
from tests.support.webhook_receivers import Receiver, start_receiver
from tests.support.webhooks import FAST


@pytest.fixture
async def hub(aiohttp_client, settings, db) -> Any:  # type: ignore[no-untyped-def]
    empty_variances(db)
    with db.cursor() as cur:
        cur.execute("DELETE FROM webhooks")
    client = await aiohttp_client(create_app(replace_settings(settings, **FAST)))
    return {"client": client, "db": db, "dsn": settings.database_url}


async def receive_variances(hub: dict[str, Any], aiohttp_server: Any, **fields: Any) -> Receiver:
    receiver = await start_receiver(aiohttp_server)
    body = {"url": receiver.url, "events": ["variance.opened", "variance.resolved"], **fields}
    resp = await hub["client"].post("/api/webhooks", json=body)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["variance_digest"] is fields.get("variance_digest", False)
    return receiver


async def run_checks(
    hub: dict[str, Any], extra_ninja: list[Any], extra_tl: list[Any], *, complete: bool = True
) -> None:
    n, t = baseline()
    write_source(hub["db"], hub["dsn"], "ninja", [*n, *extra_ninja])
    write_source(hub["db"], hub["dsn"], "threatlocker", [*t, *extra_tl], complete=complete)
    await asyncio.to_thread(check, hub["dsn"])


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received]


async def got(receiver: Receiver, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        return bodies(receiver) if len(receiver.received) >= count else None

    return await eventually(probe, what=f"{count} deliveries")


async def test_a_first_run_sends_a_digest_then_one_delivery_per_variance(hub, aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    each = await receive_variances(hub, aiohttp_server)
    digest = await receive_variances(hub, aiohttp_server, variance_digest=True)
    # First complete run: three gaps, one digest each (not three deliveries).
    await run_checks(
        hub, [ninja("71", "NO-AGENT-1"), ninja("72", "NO-AGENT-2")], [threatlocker("g-9", "stray.example")]
    )
    (first,) = await got(each, 1)
    assert first["type"] == "variance.opened" and first["digest"] is True and first["count"] == 3
    assert sorted(v["type"] for v in first["variances"]) == [
        "MISSING_NINJA",
        "MISSING_THREATLOCKER",
        "MISSING_THREATLOCKER",
    ]
    assert first["truncated"] is False
    (first_digest,) = await got(digest, 1)
    assert first_digest["variances"] == first["variances"]
    listed = {v["id"]: v for v in await (await hub["client"].get("/api/exceptions")).json()}
    assert all(v == listed[v["id"]] for v in first["variances"])
    # Next run: one gap closes (the agent was installed), one opens.
    await run_checks(hub, [ninja("72", "NO-AGENT-2"), ninja("73", "NEW-GAP")], [threatlocker("g-9", "stray.example")])
    later = (await got(each, 3))[1:]
    assert sorted((b["type"], b.get("digest", False)) for b in later) == [
        ("variance.opened", False),
        ("variance.resolved", False),
    ]
    opened = next(b for b in later if b["type"] == "variance.opened")
    resolved = next(b for b in later if b["type"] == "variance.resolved")
    assert opened["variance"]["hostname"].upper() == "NEW-GAP" and opened["variance"]["variance_status"] == "active"
    assert resolved["variance"]["hostname"].upper() == "NO-AGENT-1" and resolved["variance"]["resolved"] is True
    assert opened["check_id"] == resolved["check_id"] > first["check_id"]
    later_digests = (await got(digest, 3))[1:]
    assert sorted((b["type"], b["count"]) for b in later_digests) == [("variance.opened", 1), ("variance.resolved", 1)]


async def test_an_incomplete_run_and_a_receiver_of_other_events_hear_nothing(hub, aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    others = await start_receiver(aiohttp_server)
    resp = await hub["client"].post("/api/webhooks", json={"url": others.url, "events": ["collector.failing"]})
    assert resp.status == 201
    variances = await receive_variances(hub, aiohttp_server)
    await run_checks(hub, [ninja("71", "NO-AGENT-1")], [], complete=False)  # ThreatLocker's run stopped
    with hub["db"].cursor() as cur:
        cur.execute("SELECT count(*) FROM variance_checks WHERE NOT complete")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM webhook_deliveries WHERE event LIKE 'variance.%'")
        assert cur.fetchone()[0] == 0
    # The next complete run is the first complete one: a digest, to the variance receiver only.
    await run_checks(hub, [ninja("71", "NO-AGENT-1")], [])
    (digest,) = await got(variances, 1)
    assert digest["digest"] is True and digest["count"] == 1
    with hub["db"].cursor() as cur:
        cur.execute("SELECT event, count(*) FROM webhook_deliveries WHERE event LIKE 'variance.%' GROUP BY event")
        assert dict(cur.fetchall()) == {"variance.opened": 1}
    assert others.received == []


async def test_variance_digest_is_validated(hub) -> None:  # type: ignore[no-untyped-def]
    resp = await hub["client"].post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "variance_digest": "yes"})
    assert resp.status == 400 and (await resp.json())["error"] == "variance_digest must be true or false"
