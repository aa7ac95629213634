"""Live push over Server-Sent Events, against real PostgreSQL NOTIFY and real sockets."""

from __future__ import annotations

import json
import select
from typing import Any

import aiohttp
import psycopg2
import pytest
from aiohttp import web

from server.app import create_app
from server.realtime.keys import HUB
from tests.support.conditions import eventually
from tests.support.database import execute
from tests.support.runs import set_job, trigger
from tests.support.settings import replace_settings
from tests.support.sse_stream import SseStream

pytestmark = pytest.mark.every_loop  # tests/conftest.py: asyncio's loop and uvloop's


async def get_bytes(client, path):
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return resp.headers["ETag"], await resp.read()


def test_one_small_notify_per_job_write_whatever_the_message(database_url, db):
    listen = psycopg2.connect(database_url)
    listen.autocommit = True
    try:
        with listen.cursor() as cur:
            cur.execute("LISTEN collector_hub")
        with db.cursor() as cur:
            cur.execute("INSERT INTO job_batches (batch_id) VALUES ('bc_00000001')")
            cur.execute(
                "INSERT INTO job_runs (job_id, batch_id, collector, job_name) VALUES"
                " ('ni_00000001', 'bc_00000001', 'ninja', 'ninja-collector')"
            )
            cur.execute(
                "UPDATE job_runs SET message = repeat('x', 100000), status = 'running' WHERE job_id = 'ni_00000001'"
            )
            cur.execute("SELECT seq FROM job_batches WHERE batch_id = 'bc_00000001'")
            batch_seq = cur.fetchone()[0]
        received: list[Any] = []
        while select.select([listen], [], [], 2.0)[0]:
            listen.poll()
            received.extend(n.payload for n in listen.notifies)
            listen.notifies.clear()
            if len(received) >= 3:
                break
        assert len(received) == 3, received  # batch insert, job insert, job update: one each
        payloads = [json.loads(p) for p in received]
        assert payloads[0] == {"kind": "batch", "batch_id": "bc_00000001", "seq": payloads[0]["seq"]}
        assert payloads[2] == {
            "kind": "job", "job_id": "ni_00000001", "batch_id": "bc_00000001", "seq": batch_seq, "status": "running",
        }  # fmt: skip
        assert all(len(p.encode()) < 200 for p in received)
    finally:
        listen.close()


async def test_batch_stream_sends_current_state_then_every_change_equal_to_get_then_ends(client, db):
    created = await trigger(client, "demo", "ninja")
    batch_id = created["batch_id"]
    demo, ninja = (j["job_id"] for j in created["collectors"])
    path = f"/api/collectors/runs/batch/{batch_id}"
    resp = await client.get(path + "/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    sse = SseStream(resp)

    first = await sse.event()
    assert sse.retry == 3000
    etag, body = await get_bytes(client, path)
    assert first["event"] == "batch" and first["data"].encode() == body and etag == f'"b-{first["id"]}"'

    seqs = [int(first["id"])]
    for job_id, columns in (
        (demo, {"status": "running", "progress_percent": 10, "message": "Page 1"}),
        (demo, {"progress_percent": 60}),
        (ninja, {"status": "running"}),
        (demo, {"status": "completed"}),
    ):
        await set_job(db, job_id, **columns)
        event = await sse.event()
        etag, body = await get_bytes(client, path)
        assert event["data"].encode() == body, "event data must be byte-for-byte the GET body"
        assert etag == f'"b-{event["id"]}"'
        seqs.append(int(event["id"]))
    await set_job(db, ninja, status="failed", error="boom")
    last = await sse.event()
    assert json.loads(last["data"])["status"] == "failed"
    assert await sse.event() is None, "a batch stream ends after its terminal state"
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_resume_with_last_event_id_header_or_query(client, db):
    created = await trigger(client)
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    path = f"/api/collectors/runs/batch/{batch_id}/events"
    first = await SseStream(await client.get(path)).event()
    seq = first["id"]

    # Nothing newer: no initial event; the next change is the first thing sent.
    for how in ("header", "query"):
        kwargs = {"headers": {"Last-Event-ID": seq}} if how == "header" else {"params": {"lastEventId": seq}}
        resp = await client.get(path, **kwargs)
        sse = SseStream(resp)
        await set_job(db, job_id, progress_percent=int(seq) % 90 + 1, status="running")
        event = await sse.event()
        assert int(event["id"]) > int(seq)
        seq = event["id"]
        resp.close()

    # An older id: the current state comes at once.
    resp = await client.get(path, headers={"Last-Event-ID": first["id"]})
    event = await SseStream(resp).event()
    assert event["id"] == seq
    resp.close()

    await set_job(db, job_id, status="completed")
    final = (await SseStream(await client.get(path)).events_until("completed"))[-1]
    resp = await client.get(path, headers={"Last-Event-ID": final["id"]})
    assert resp.status == 204, "a client that has the terminal state is told to stop reconnecting"


async def test_a_collectors_stream_resumes_with_every_run_that_changed_while_away(client, db):
    stream, ninja = "/api/collectors/events", {"collectors": "ninja"}
    first = await trigger(client, "ninja")
    run_a = first["collectors"][0]["job_id"]
    resp = await client.get(stream, params=ninja)
    seen = await SseStream(resp).event()
    assert json.loads(seen["data"])["job_id"] == run_a
    resp.close()
    # Stays connected: once it has the last write below, the hub has published every write, and
    # no live event can overtake the resume's (a change published while the resume reads comes
    # first: docs/LIVE_PUSH.md).
    watcher = SseStream(await client.get(stream, params=ninja))

    # While the client is away, a second run of ninja is queued (now the collector's active
    # run) and the first one ends: both are news, the end of the first most of all.
    second = await trigger(client, "ninja")
    run_b = second["collectors"][0]["job_id"]
    await set_job(db, run_a, status="completed")
    await watcher.events_until("completed")
    resp = await client.get(stream, params=ninja, headers={"Last-Event-ID": seen["id"]})
    sse = SseStream(resp)
    events = [await sse.event(), await sse.event()]
    assert [(json.loads(e["data"])["job_id"], json.loads(e["data"])["status"]) for e in events] == [
        (run_b, "queued"),
        (run_a, "completed"),
    ], "in seq order: the second run was queued before the first ended"
    assert int(seen["id"]) < int(events[0]["id"]) < int(events[1]["id"])
    for event in events:
        job_id = json.loads(event["data"])["job_id"]
        assert event["data"].encode() == (await get_bytes(client, f"/api/collectors/runs/job/{job_id}"))[1]
    resp.close()
    watcher.resp.close()

    # Resuming from the newest of them: nothing is sent again; the next change comes first.
    resp = await client.get(stream, params=ninja, headers={"Last-Event-ID": events[1]["id"]})
    sse = SseStream(resp)
    await set_job(db, run_b, status="running", message="resumed")
    event = await sse.event()
    assert (json.loads(event["data"])["job_id"], json.loads(event["data"])["message"]) == (run_b, "resumed")
    resp.close()


async def test_job_stream_and_collectors_stream(client, db):
    created = await trigger(client, "demo", "ninja")
    demo, ninja = (j["job_id"] for j in created["collectors"])
    job_sse = SseStream(await client.get(f"/api/collectors/runs/job/{demo}/events"))
    coll_sse = SseStream(await client.get("/api/collectors/events", params={"collectors": "ninja"}))

    first = await job_sse.event()
    assert first["event"] == "job"
    assert first["data"].encode() == (await get_bytes(client, f"/api/collectors/runs/job/{demo}"))[1]
    latest = await coll_sse.event()
    assert latest["event"] == "job" and json.loads(latest["data"])["job_id"] == ninja

    await set_job(db, ninja, status="running", message="ninja page 1")
    event = await coll_sse.event()
    assert json.loads(event["data"])["message"] == "ninja page 1"
    # The demo job's body shows its batch's summary, which moved: the job stream gets it.
    event = await job_sse.event()
    assert json.loads(event["data"])["batch_status"] == "running"
    assert event["data"].encode() == (await get_bytes(client, f"/api/collectors/runs/job/{demo}"))[1]

    await set_job(db, demo, status="completed")
    assert json.loads((await job_sse.event())["data"])["status"] == "completed"
    assert await job_sse.event() is None
    await set_job(db, ninja, status="completed")
    # (the ninja job's body also moved when its sibling completed: its batch summary changed)
    await coll_sse.events_until("completed")
    # A new run of the collector shows up on the same stream.
    again = await trigger(client, "ninja")
    event = await coll_sse.event()
    assert json.loads(event["data"])["job_id"] == again["collectors"][0]["job_id"]
    coll_sse.resp.close()


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/collectors/runs/batch/bc_00000000/events", 404, "Batch not found"),
        ("/api/collectors/runs/job/zz_00000000/events", 404, "Job not found"),
        ("/api/collectors/runs/batch/bc_1/events", 404, "Batch not found"),
        ("/api/collectors/events?collectors=nope", 400, "Unknown collector"),
        ("/api/collectors/events?lastEventId=abc", 400, "lastEventId must be a seq"),
    ],
)
async def test_stream_errors_are_json_before_the_stream_starts(client, path, status, error):
    resp = await client.get(path)
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert error in (await resp.json())["error"]


async def test_bad_last_event_id_header_is_400(client):
    created = await trigger(client)
    resp = await client.get(f"/api/collectors/runs/batch/{created['batch_id']}/events", headers={"Last-Event-ID": "-1"})
    assert resp.status == 400
    assert "Last-Event-ID" in (await resp.json())["error"]


async def test_heartbeat_comments_keep_an_idle_stream_alive(aiohttp_client, settings):
    client = await aiohttp_client(create_app(replace_settings(settings, stream_heartbeat=0.2)))
    created = await trigger(client)
    sse = SseStream(await client.get(f"/api/collectors/runs/batch/{created['batch_id']}/events"))
    await sse.event()

    async def heartbeats():
        lines = await sse.block(wait=5)
        return lines == [": heartbeat"]

    for _ in range(2):
        await eventually(heartbeats, what="a heartbeat comment")
    sse.resp.close()


async def test_raw_sql_notify_reaches_stream(client, db):
    created = await trigger(client)
    sse = SseStream(await client.get(f"/api/collectors/runs/batch/{created['batch_id']}/events"))
    await sse.event()
    # A direct batch write, no job involved.
    await execute(db, "UPDATE job_batches SET message = 'edited by hand' WHERE batch_id = %s", created["batch_id"])
    event = await sse.event()
    assert json.loads(event["data"])["message"] == "edited by hand"
    sse.resp.close()


async def test_an_idle_stream_whose_client_left_ends_at_the_next_heartbeat(settings):
    """Nothing is written to an idle stream but its heartbeat: that is where a client that has
    gone is noticed, so its stream and subscription do not outlive it. Served as `serve` does
    (aiohttp's test server cancels a handler when its client leaves; `serve` does not)."""
    app = create_app(replace_settings(settings, stream_heartbeat=0.2))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            run = await session.post(f"http://127.0.0.1:{port}/api/collectors/run", json={"collectors": ["demo"]})
            batch_id = (await run.json())["batch_id"]
            resp = await session.get(f"http://127.0.0.1:{port}/api/collectors/runs/batch/{batch_id}/events")
            assert (await resp.content.readline()).startswith(b"retry:")
            hub = app[HUB]

            async def served() -> bool:
                return hub.open_connections()["sse"] == 1 and len(hub.heartbeat) == 1

            await eventually(served, what="the stream to be served")
            resp.close()  # the client leaves; nothing happens to the batch meanwhile

            async def ended() -> bool:
                return hub.open_connections()["sse"] == 0 and len(hub.heartbeat) == 0

            await eventually(ended, what="the stream of a client that left to end")
    finally:
        await runner.cleanup()
