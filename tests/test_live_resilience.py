"""Live push under stress: long-poll and the cache, the LISTEN connection killed mid-run, a
client that reads nothing, shutdown, and a NOTIFY waking the runner."""

from __future__ import annotations

import asyncio
import json
import socket
import time

from aiohttp import WSMsgType

from server.app import create_app
from server.realtime.keys import HUB
from server.realtime.listen_connection import APPLICATION_NAME
from tests.support.conditions import eventually
from tests.support.database import execute
from tests.support.runs import set_job, trigger
from tests.support.settings import replace_settings
from tests.support.sse_stream import SseStream


async def test_long_poll_returns_when_the_seq_moves(client, db):
    created = await trigger(client)
    path = f"/api/collectors/runs/batch/{created['batch_id']}"
    etag = (await client.get(path)).headers["ETag"]

    began = time.monotonic()
    waiting = asyncio.ensure_future(client.get(path, params={"wait": "20"}, headers={"If-None-Match": etag}))
    await asyncio.sleep(0.3)  # let the request start waiting (not a condition: the answer must not come yet)
    assert not waiting.done()
    await set_job(db, created["collectors"][0]["job_id"], status="running", progress_percent=12)
    resp = await waiting
    assert resp.status == 200 and resp.headers["ETag"] != etag
    assert (await resp.json())["collectors"][0]["progress_percent"] == 12
    assert time.monotonic() - began < 10


async def test_long_poll_unchanged_is_304_after_the_wait_and_terminal_answers_at_once(client, db):
    created = await trigger(client)
    job_id = created["collectors"][0]["job_id"]
    for path, tag in (
        (f"/api/collectors/runs/batch/{created['batch_id']}", "b"),
        (f"/api/collectors/runs/job/{job_id}", "j"),
    ):
        etag = (await client.get(path)).headers["ETag"]
        assert etag.startswith(f'"{tag}-')
        began = time.monotonic()
        resp = await client.get(path, params={"wait": "1"}, headers={"If-None-Match": etag})
        assert resp.status == 304 and time.monotonic() - began >= 0.9
    await set_job(db, job_id, status="completed")
    began = time.monotonic()
    resp = await client.get(path, params={"wait": "30"})
    assert resp.status == 200 and (await resp.json())["status"] == "completed"
    assert time.monotonic() - began < 5
    for bad in ("31", "-1", "x"):
        resp = await client.get(path, params={"wait": bad})
        assert resp.status == 400 and "wait" in (await resp.json())["error"]


async def test_polling_a_batch_is_answered_from_the_cache_and_never_stale(client, db):
    created = await trigger(client)
    path = f"/api/collectors/runs/batch/{created['batch_id']}"
    hub = client.app[HUB]
    first = await client.get(path)
    reads = hub.stats["reads"]
    for _ in range(20):
        resp = await client.get(path, headers={"If-None-Match": first.headers["ETag"]})
        assert resp.status == 304
    assert hub.stats["reads"] == reads, "unchanged polls must not read the tables"
    for percent in range(1, 30):  # a change is visible to the very next request
        await set_job(db, created["collectors"][0]["job_id"], status="running", progress_percent=percent)
        body = await (await client.get(path)).json()
        assert body["collectors"][0]["progress_percent"] == percent


async def test_listener_killed_mid_run_every_client_still_reaches_the_final_state(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(replace_settings(settings, listener_max_backoff=0.5)))
    created = await trigger(client, "demo", "ninja")
    batch_id = created["batch_id"]
    demo, ninja = (j["job_id"] for j in created["collectors"])
    sse = SseStream(await client.get(f"/api/collectors/runs/batch/{batch_id}/events"))
    await sse.event()
    ws = await client.ws_connect("/api/ws")
    await ws.send_json({"op": "subscribe", "job_id": demo})
    await ws.send_json({"op": "subscribe", "collectors": ["ninja"]})
    await set_job(db, demo, status="running", progress_percent=50)
    await sse.events_until("running")

    with db.cursor() as cur:
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (APPLICATION_NAME,),
        )
        assert cur.fetchone()[0] == 1, "exactly one LISTEN connection per process"
    # Writes while the listener is down: their NOTIFYs reach nobody.
    await set_job(db, demo, status="completed")
    await set_job(db, ninja, status="failed", error="boom")

    events = await sse.events_until("failed")
    assert json.loads(events[-1]["data"]) == await (await client.get(f"/api/collectors/runs/batch/{batch_id}")).json()
    seen: dict[str, str] = {}
    while seen.get(demo) != "completed" or seen.get(ninja) != "failed":
        msg = await ws.receive(timeout=15)
        assert msg.type == WSMsgType.TEXT
        data = json.loads(msg.data)
        if data["type"] == "job":
            seen[data["data"]["job_id"]] = data["data"]["status"]
    await ws.close()

    async def ready():
        resp = await client.get("/readyz")
        return resp.status == 200 and (await resp.json())["listener"] == "listening"

    await eventually(ready, what="listener back")
    assert client.app[HUB].listener.reconnects >= 1


def raw_stalled_request(host: str, port: int, path: str) -> socket.socket:
    """A real client that sends a request and then never reads (tiny receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


async def test_a_stalled_client_is_dropped_and_never_delays_a_healthy_one(aiohttp_client, settings, db):
    client = await aiohttp_client(create_app(replace_settings(settings, stream_send_timeout=1.0)))
    created = await trigger(client)
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    hub = client.app[HUB]
    path = f"/api/collectors/runs/batch/{batch_id}/events"
    stalled = await asyncio.to_thread(raw_stalled_request, client.host, client.port, path)
    healthy = SseStream(await client.get(path))
    await healthy.event()
    await eventually(lambda: _async(len(hub.subscribers) == 2), what="both subscribed")
    try:
        big = "x" * 200_000  # raw SQL has no length limit: each event is ~200 KB
        for i in range(40):
            await set_job(db, job_id, status="running", progress_percent=i + 1, message=f"{i} {big}")
            began = time.monotonic()
            event = await healthy.event()
            assert json.loads(event["data"])["collectors"][0]["progress_percent"] == i + 1
            assert time.monotonic() - began < 2.0, "the healthy client waited for the stalled one"
            if len(hub.subscribers) == 1:
                break
        await eventually(lambda: _async(len(hub.subscribers) == 1), what="the stalled client dropped")
        await set_job(db, job_id, status="completed", message="done")
        final = json.loads((await healthy.events_until("completed"))[-1]["data"])
        assert final["collectors"][0]["message"] == "done"
    finally:
        stalled.close()


async def _async(value):
    return value


async def test_shutdown_closes_websockets_with_1001_and_ends_sse(aiohttp_server, settings):
    server = await aiohttp_server(create_app(settings))
    from aiohttp import ClientSession

    async with ClientSession() as session:
        resp = await session.post(server.make_url("/api/collectors/run"), json={"collectors": ["demo"]})
        batch_id = (await resp.json())["batch_id"]
        ws = await session.ws_connect(server.make_url("/api/ws"))
        await ws.send_json({"op": "subscribe", "batch_id": batch_id})
        await ws.receive(timeout=10)
        sse_resp = await session.get(server.make_url(f"/api/collectors/runs/batch/{batch_id}/events"))
        sse = SseStream(sse_resp)
        await sse.event()
        closing = asyncio.ensure_future(server.close())
        msg = await ws.receive(timeout=10)
        while msg.type == WSMsgType.TEXT:
            msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1001
        assert await sse.event(wait=10) is None
        assert any("shutting down" in c for c in sse.comments)
        await closing


async def test_a_queued_job_wakes_the_runner_through_notify(aiohttp_client, settings, db):
    # The runner polls once a minute; only the NOTIFY can make it start the job quickly.
    app = create_app(replace_settings(settings, run_collectors=True, runner_poll_interval=60))
    client = await aiohttp_client(app)
    await asyncio.sleep(0)  # (the runner's first poll happened at start)
    await execute(db, "INSERT INTO job_batches (batch_id) VALUES ('bc_55555555')")
    await execute(
        db,
        "INSERT INTO job_runs (job_id, batch_id, collector, job_name) VALUES"
        " ('de_55555555', 'bc_55555555', 'demo', 'demo-collector')",
    )

    async def started():
        body = await (await client.get("/api/collectors/runs/job/de_55555555")).json()
        return body["status"] != "queued"

    await eventually(started, timeout=10, what="the runner started the job")
    await client.post("/api/collectors/runs/batch/bc_55555555/cancel")
