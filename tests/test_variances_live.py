"""The variances pushed live (docs/LIVE_PUSH.md, "The variances"): over WebSocket and SSE, each
page headed by the open counts, each change with the variance as GET /api/exceptions lists it,
resumable by seq; a change one operator makes reaches another's open stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from server.app import create_app
from server.security.api_keys import create_key
from tests.support.sse_stream import SseStream
from tests.support.variances import baseline, check, empty_variances, ninja, threatlocker, write_source


@pytest.fixture
async def hub(aiohttp_client, settings, db) -> Any:  # type: ignore[no-untyped-def]
    """A server over an inventory where both vendors agree (no variance yet), with a trigger key
    (alice) and a read key (bob)."""
    empty_variances(db)
    with db.cursor() as cur:
        cur.execute("DELETE FROM api_keys")
    alice, _ = create_key(db, "alice", "trigger")
    bob, _ = create_key(db, "bob", "read")
    n, t = baseline()
    write_source(db, settings.database_url, "ninja", n)
    write_source(db, settings.database_url, "threatlocker", t)
    await asyncio.to_thread(check, settings.database_url)
    client = await aiohttp_client(create_app(settings))
    return {"client": client, "alice": {"X-API-Key": alice}, "bob": {"X-API-Key": bob}, "db": db, "settings": settings}


async def open_gaps(hub: dict[str, Any]) -> None:
    """A NinjaOne machine without the agent and a ThreatLocker machine NinjaOne does not know."""
    n, t = baseline()
    dsn = hub["settings"].database_url
    write_source(hub["db"], dsn, "ninja", [*n, ninja("77", "NO-AGENT")])
    write_source(hub["db"], dsn, "threatlocker", [*t, threatlocker("g-77", "stray.corp.example")])
    await asyncio.to_thread(check, dsn)


async def receive(ws: Any, wait: float = 15.0) -> dict[str, Any]:
    message: dict[str, Any] = await ws.receive_json(timeout=wait)
    return message


async def listed(hub: dict[str, Any]) -> dict[int, dict[str, Any]]:
    body = await (await hub["client"].get("/api/exceptions?limit=500", headers=hub["bob"])).json()
    return {item["id"]: item for item in body}


async def test_a_follower_gets_the_counts_then_each_opened_variance_as_listed(hub) -> None:  # type: ignore[no-untyped-def]
    async with hub["client"].ws_connect("/api/ws", headers=hub["bob"]) as ws:
        await ws.send_json({"op": "subscribe", "variances": True})
        assert await receive(ws) == {"type": "subscribed", "variances": True}
        first = await receive(ws)
        assert first["type"] == "variances" and first["changes"] == []
        assert first["counts"]["open"] == 0
        await open_gaps(hub)
        page = await receive(ws)
    assert page["type"] == "variances"
    assert page["counts"]["open"] == 2
    assert page["counts"]["by_type"]["MISSING_THREATLOCKER"] == 1 and page["counts"]["by_type"]["MISSING_NINJA"] == 1
    now = await listed(hub)
    assert sorted(c["variance"]["type"] for c in page["changes"]) == ["MISSING_NINJA", "MISSING_THREATLOCKER"]
    for change in page["changes"]:
        assert change["from_status"] is None and change["to_status"] == "active"
        assert change["variance"] == now[change["variance"]["id"]]
    seqs = [c["seq"] for c in page["changes"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 2


async def test_sse_resumes_after_the_last_seq_it_had(hub) -> None:  # type: ignore[no-untyped-def]
    await open_gaps(hub)
    client = hub["client"]
    resp = await client.get("/api/variances/events?since=0", headers=hub["bob"])
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    stream = SseStream(resp)
    try:
        counts = await stream.event()
        assert counts["event"] == "counts" and "id" not in counts
        assert json.loads(counts["data"])["open"] == 2
        changes = [await stream.event(), await stream.event()]
        assert [c["event"] for c in changes] == ["variance", "variance"]
    finally:
        stream.close()
    first_seq = int(changes[0]["id"])
    # Resume after the first: only the second comes again.
    resp = await client.get("/api/variances/events", headers={**hub["bob"], "Last-Event-ID": str(first_seq)})
    stream = SseStream(resp)
    try:
        assert (await stream.event())["event"] == "counts"
        again = await stream.event()
        assert again["id"] == changes[1]["id"] and json.loads(again["data"]) == json.loads(changes[1]["data"])
    finally:
        stream.close()


async def test_one_operators_change_reaches_another_operators_open_stream(hub) -> None:  # type: ignore[no-untyped-def]
    await open_gaps(hub)
    client = hub["client"]
    target = next(v for v in (await listed(hub)).values() if v["type"] == "MISSING_THREATLOCKER")
    async with client.ws_connect("/api/ws", headers=hub["bob"]) as ws:
        await ws.send_json({"op": "subscribe", "variances": True})
        assert (await receive(ws))["type"] == "subscribed"
        assert (await receive(ws))["changes"] == []  # nothing since it subscribed
        resp = await client.post(
            f"/api/exceptions/{target['id']}/resolve", json={"notes": "agent installed"}, headers=hub["alice"]
        )
        assert resp.status == 200, await resp.text()
        page = await receive(ws)
    (change,) = page["changes"]
    assert change["variance"]["id"] == target["id"] and change["changed_by"] == "alice"
    assert change["from_status"] == "active" and change["to_status"] != "active"
    assert change["variance"] == (await listed(hub))[target["id"]]
    assert page["counts"]["open"] == 1


async def test_a_bad_variances_subscription_is_refused_clearly(hub) -> None:  # type: ignore[no-untyped-def]
    client = hub["client"]
    async with client.ws_connect("/api/ws", headers=hub["bob"]) as ws:
        await ws.send_json({"op": "subscribe", "variances": "yes"})
        assert "variances must be true" in (await receive(ws))["error"]
        await ws.send_json({"op": "subscribe", "variances": True, "after": 3})
        assert "take since" in (await receive(ws))["error"]
        await ws.send_json({"op": "unsubscribe", "variances": True})
        assert (await receive(ws))["error"] == "not subscribed to that"
    resp = await client.get("/api/variances/events?since=x", headers=hub["bob"])
    assert resp.status == 400 and "since" in (await resp.json())["error"]
    resp = await client.get("/api/variances/events")
    assert resp.status == 401
