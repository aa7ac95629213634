"""Live push over WebSocket (/api/ws): the op protocol, every malformed message, limits."""

from __future__ import annotations

import json

import pytest
from aiohttp import WSMsgType

from server.app import create_app
from tests.support.runs import set_job, trigger
from tests.support.settings import replace_settings

pytestmark = pytest.mark.every_loop  # tests/conftest.py: asyncio's loop and uvloop's


async def receive(ws, wait: float = 15.0) -> dict:
    msg = await ws.receive(timeout=wait)
    assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


async def receive_until(ws, predicate, wait: float = 15.0) -> list[dict]:
    seen = []
    while True:
        message = await receive(ws, wait)
        seen.append(message)
        if predicate(message):
            return seen


async def test_subscribe_batch_ack_then_state_then_changes_equal_to_get(client, db):
    created = await trigger(client, "demo")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    path = f"/api/collectors/runs/batch/{batch_id}"
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "batch_id": batch_id})
        assert await receive(ws) == {"type": "subscribed", "batch_id": batch_id}
        state = await receive(ws)
        resp = await client.get(path)
        assert state["type"] == "batch" and resp.headers["ETag"] == f'"b-{state["seq"]}"'
        assert state["data"] == await resp.json()
        # Raw text too: "data" is the GET body byte for byte.
        await set_job(db, job_id, status="running", progress_percent=30)
        raw = (await ws.receive(timeout=15)).data
        body = await (await client.get(path)).text()
        assert raw.endswith(f', "data": {body}}}')
        await set_job(db, job_id, status="completed")
        final = (await receive_until(ws, lambda m: m.get("data", {}).get("status") == "completed"))[-1]
        assert final["seq"] > state["seq"]
        # The subscription ended with the terminal state; the connection stays usable.
        await ws.send_json({"op": "ping"})
        assert await receive(ws) == {"type": "pong"}


async def test_several_subscriptions_share_a_connection_and_unsubscribe_stops_at_once(client, db):
    one = await trigger(client, "demo")
    two = await trigger(client, "ninja")
    job_one, job_two = one["collectors"][0]["job_id"], two["collectors"][0]["job_id"]
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "job_id": job_one})
        await receive_until(ws, lambda m: m["type"] == "job")
        await ws.send_json({"op": "subscribe", "batch_id": two["batch_id"]})
        await receive_until(ws, lambda m: m["type"] == "batch")
        await ws.send_json({"op": "subscribe", "collectors": ["ninja"]})
        await receive_until(ws, lambda m: m["type"] == "job" and m["data"]["job_id"] == job_two)

        await ws.send_json({"op": "unsubscribe", "job_id": job_one})
        assert await receive(ws) == {"type": "unsubscribed", "job_id": job_one}
        await set_job(db, job_one, status="running", message="nobody listens")
        await set_job(db, job_two, status="running", message="ninja runs")
        got = await receive_until(ws, lambda m: m["type"] == "job" and m["data"]["message"] == "ninja runs")
        assert all(m.get("data", {}).get("job_id") != job_one for m in got)
        await ws.send_json({"op": "unsubscribe", "job_id": job_one})
        assert (await receive_until(ws, lambda m: m["type"] == "error"))[-1]["error"] == "not subscribed to that"


async def test_since_skips_a_state_the_client_has(client, db):
    created = await trigger(client, "demo")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "batch_id": batch_id})
        await receive(ws)
        seq = (await receive(ws))["seq"]
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "batch_id": batch_id, "since": seq})
        assert (await receive(ws))["type"] == "subscribed"
        await set_job(db, job_id, status="running")
        state = await receive(ws)
        assert state["type"] == "batch" and state["seq"] > seq
        await ws.send_json({"op": "subscribe", "batch_id": batch_id, "since": seq})  # older: state at once
        assert (await receive(ws))["type"] == "subscribed"
        assert (await receive(ws))["seq"] == state["seq"]


async def test_a_collectors_resume_sends_every_run_that_changed_since(client, db):
    first = await trigger(client, "ninja")
    run_a = first["collectors"][0]["job_id"]
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "collectors": ["ninja"]})
        seq = (await receive_until(ws, lambda m: m["type"] == "job"))[-1]["seq"]
    async with client.ws_connect("/api/ws") as watcher:  # once it has the last write, all are published
        await watcher.send_json({"op": "subscribe", "collectors": ["ninja"]})
        second = await trigger(client, "ninja")
        run_b = second["collectors"][0]["job_id"]
        await set_job(db, run_a, status="failed", message="ended while the client was away")
        await receive_until(watcher, lambda m: m["type"] == "job" and m["data"]["status"] == "failed")
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "collectors": ["ninja"], "since": seq})
        assert (await receive(ws))["type"] == "subscribed"
        states = [await receive(ws), await receive(ws)]
        assert [(m["data"]["job_id"], m["data"]["status"]) for m in states] == [(run_b, "queued"), (run_a, "failed")]
        assert seq < states[0]["seq"] < states[1]["seq"]


async def test_a_collectors_resume_replays_at_most_half_the_outbox(aiohttp_client, settings, db):
    """A client away for a long time gets the newest runs that changed, not more than half of
    its outbox (the rest would close it as too slow), and each collector's active run."""
    client = await aiohttp_client(create_app(replace_settings(settings, stream_outbox_limit=8)))
    with db.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM job_batches")
        since = cur.fetchone()[0]
    async with client.ws_connect("/api/ws") as watcher:  # once it has the last write, all are published
        await watcher.send_json({"op": "subscribe", "collectors": ["ninja"]})
        runs = [(await trigger(client, "ninja"))["collectors"][0]["job_id"] for _ in range(6)]
        for job_id in runs[:5]:
            await set_job(db, job_id, status="completed")
        await receive_until(
            watcher,
            lambda m: m["type"] == "job" and m["data"]["job_id"] == runs[4] and m["data"]["status"] == "completed",
        )
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "collectors": ["ninja"], "since": since})
        assert (await receive(ws))["type"] == "subscribed"
        replay = [await receive(ws) for _ in range(5)]
        assert (
            [(m["data"]["job_id"], m["data"]["status"]) for m in replay]
            == [
                (runs[5], "queued"),  # the active run, though four runs changed after it
                *((job_id, "completed") for job_id in runs[1:5]),  # the newest four changes: half of 8
            ]
        )
        await set_job(db, runs[5], status="running")
        now = await receive(ws)
        assert (now["data"]["job_id"], now["data"]["status"]) == (runs[5], "running"), "still subscribed"


async def test_unknown_objects_get_a_404_error_message(client):
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "batch_id": "bc_00000000"})
        assert await receive(ws) == {
            "type": "error", "error": "Batch not found", "status": 404, "batch_id": "bc_00000000",
        }  # fmt: skip
        await ws.send_json({"op": "subscribe", "job_id": "zz_00000000"})
        assert (await receive(ws))["error"] == "Job not found"


BAD_MESSAGES = [
    ("not json", "malformed JSON"),
    ("[1, 2]", "JSON object"),
    ('"subscribe"', "JSON object"),
    ("{}", "unknown op missing"),
    ('{"op": "explode"}', 'unknown op "explode"'),
    ('{"op": "ping", "x": 1}', "unknown field(s) for ping: 'x'"),
    ('{"op": "subscribe"}', "exactly one of"),
    ('{"op": "subscribe", "batch_id": "bc_1", "job_id": "ni_12345678"}', "exactly one of"),
    ('{"op": "subscribe", "batch_id": "bc_1"}', "Malformed batch id"),
    ('{"op": "subscribe", "batch_id": 12345678}', "batch_id must be a string"),
    ('{"op": "subscribe", "job_id": "NI_12345678"}', "Malformed job id"),
    ('{"op": "subscribe", "collectors": []}', "non-empty list"),
    ('{"op": "subscribe", "collectors": "ninja"}', "non-empty list"),
    ('{"op": "subscribe", "collectors": ["nope"]}', "Unknown collector"),
    ('{"op": "subscribe", "collectors": ["ninja", "ninja"]}', "more than once"),
    ('{"op": "subscribe", "batch_id": "bc_12345678", "since": -1}', "since must be a seq"),
    ('{"op": "subscribe", "batch_id": "bc_12345678", "since": "5"}', "since must be a seq"),
    ('{"op": "subscribe", "batch_id": "bc_12345678", "since": true}', "since must be a seq"),
    ('{"op": "unsubscribe", "batch_id": "bc_12345678", "since": 1}', "unknown field(s) for unsubscribe"),
    ("[" * 100000 + "]" * 100000, None),  # too big: closed with 1009, not an error message
]


@pytest.mark.parametrize(("text", "error"), BAD_MESSAGES, ids=[t[:30] for t, _ in BAD_MESSAGES])
async def test_every_malformed_message_gets_an_error(client, text, error):
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_str(text)
        if error is None:
            msg = await ws.receive(timeout=15)
            assert msg.type == WSMsgType.CLOSE and msg.data == 1009
            return
        reply = await receive(ws)
        assert reply["type"] == "error" and error in reply["error"], reply
        await ws.send_json({"op": "ping"})  # still open after one
        assert await receive(ws) == {"type": "pong"}


async def test_a_client_that_keeps_sending_garbage_is_closed_with_1008(client):
    limit = 5  # COLLECTOR_HUB_WS_MAX_BAD_MESSAGES default
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_bytes(b"\x00binary")
        assert "binary" in (await receive(ws))["error"]
        for i in range(limit - 1):
            await ws.send_str(f"garbage {i}")
            assert (await receive(ws))["type"] == "error"
        msg = await ws.receive(timeout=15)
        assert msg.type == WSMsgType.CLOSE
        assert msg.data == 1008 and msg.extra == "too many malformed messages"


async def test_subscription_limit(aiohttp_client, settings):
    client = await aiohttp_client(create_app(replace_settings(settings, ws_max_subscriptions=2)))
    batches = [(await trigger(client))["batch_id"] for _ in range(3)]
    async with client.ws_connect("/api/ws") as ws:
        for batch_id in batches[:2]:
            await ws.send_json({"op": "subscribe", "batch_id": batch_id})
            await receive_until(ws, lambda m: m["type"] == "batch")
        await ws.send_json({"op": "subscribe", "batch_id": batches[2]})
        reply = await receive(ws)
        assert reply == {
            "type": "error",
            "error": "subscription limit reached (2 per connection)",
            "batch_id": batches[2],
        }


async def test_compression_is_off_by_default_and_on_by_setting(aiohttp_client, settings):
    for enabled in (False, True):
        client = await aiohttp_client(create_app(replace_settings(settings, ws_compression=enabled)))
        async with client.ws_connect("/api/ws", compress=15) as ws:
            extensions = ws._response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in extensions) is enabled
            await ws.send_json({"op": "ping"})
            assert await receive(ws) == {"type": "pong"}
