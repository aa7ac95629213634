"""Encode once, send many: a change is turned into JSON once per process, however many
clients follow it, and every client gets the same bytes. The JSON is PostgreSQL's, built in
the statement that reads the batch (server/runs/body_sql.py): Python encodes no pushed body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.realtime.events import BatchSnapshot, Event
from server.runs import live
from tests.support.conditions import eventually
from tests.support.runs import set_job, trigger
from tests.support.sse_stream import SseStream

FOLLOWERS = 5


async def test_a_change_is_encoded_once_however_many_clients_follow_it(client, db, monkeypatch: pytest.MonkeyPatch):
    created = await trigger(client, "demo")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    streams = []
    try:
        for _ in range(FOLLOWERS):
            resp = await client.get(f"/api/collectors/runs/batch/{batch_id}/events")
            assert resp.status == 200
            stream = SseStream(resp)
            streams.append(stream)
            assert (await stream.event())["event"] == "batch"  # the current state

        encoded: list[bytes] = []  # the batch's body, each time it is made into bytes
        real_snapshot_from = live.snapshot_from

        def counting_snapshot_from(rows: Any) -> BatchSnapshot | None:
            snapshot = real_snapshot_from(rows)
            if snapshot is not None and snapshot.batch_id == batch_id:
                encoded.append(snapshot.batch.data)
            return snapshot

        monkeypatch.setattr(live, "snapshot_from", counting_snapshot_from)
        await set_job(db, job_id, status="running", progress_percent=40, message="page 4 of 10")

        received = [await stream.event() for stream in streams]
        assert {e["event"] for e in received} == {"batch"}
        assert len({e["data"] for e in received}) == 1, "every client gets the same bytes"
        assert json.loads(received[0]["data"])["collectors"][0]["progress_percent"] == 40
        await eventually(lambda: _value(len(encoded) >= 1), what="the change to be encoded")
        assert len(encoded) == 1, f"the batch was encoded {len(encoded)} times for {FOLLOWERS} clients"
    finally:
        for stream in streams:
            stream.close()


async def _value(value: bool) -> bool:
    return value


async def test_no_pushed_state_is_encoded_by_python(client, db, monkeypatch: pytest.MonkeyPatch):
    """The batch's body and its jobs' come as JSON text from PostgreSQL, for the batch's
    followers and for a job's reader alike, and are sent as they came (this test once held
    that a job's body was encoded only when read; now no body is encoded by Python at all,
    docs/LIVE_PUSH.md, the fixed cost per state)."""
    created = await trigger(client, "demo")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    stream = SseStream(await client.get(f"/api/collectors/runs/batch/{batch_id}/events"))
    try:
        assert (await stream.event())["event"] == "batch"
        texts: dict[str, list[str]] = {"batch": [], "job": []}  # as the statement returned them
        real_snapshot_from = live.snapshot_from

        def recording_snapshot_from(rows: Any) -> BatchSnapshot | None:
            if rows and rows[0][0][0][1] == batch_id:  # the batch's fields, then each job's
                texts["batch"].append(rows[0][0][0][3])
                texts["job"].extend(fields[3] for fields in rows[0][0][1:])
            return real_snapshot_from(rows)

        monkeypatch.setattr(live, "snapshot_from", recording_snapshot_from)
        await set_job(db, job_id, status="running", progress_percent=40)
        pushed = (await stream.event())["data"]
        assert json.loads(pushed)["collectors"][0]["progress_percent"] == 40
        assert pushed in texts["batch"], "PostgreSQL built the batch's body; Python sent it as it came"
        ws = await client.ws_connect("/api/ws")  # a reader of the job: its body is PostgreSQL's too
        await ws.send_json({"op": "subscribe", "job_id": job_id})
        while (message := (await ws.receive(timeout=15)).data) and json.loads(message)["type"] != "job":
            pass
        data = json.loads(message)["data"]
        assert data == await (await client.get(f"/api/collectors/runs/job/{job_id}")).json()
        assert data["progress_percent"] == 40
        assert any(message.endswith(f"{text}}}") for text in texts["job"]), "nor the job's body"
        await ws.close()
    finally:
        stream.close()


@pytest.mark.parametrize("kind", ["batch", "job", "other"])
@pytest.mark.parametrize("message_size", [70, 125, 126, 1000, 65_535, 65_536, 70_000])
def test_a_websocket_frame_is_its_message_with_the_header_of_its_length(kind: str, message_size: int):
    """The shared frame is put together apart from ``ws_message`` (docs/LIVE_PUSH.md, the fixed
    cost per state): it must hold that message, with the header of its length (RFC 6455 5.2:
    7 bits up to 125, 16 bits up to 65535, else 64), on each side of those limits."""

    def event(text: str) -> Event:
        return Event(kind, "bc_00000001", 123_456, json.dumps({"message": text}).encode(), "running")

    text = "x" * (message_size - len(event("").ws_message()))
    frame, message = event(text).ws_frame(), event(text).ws_message()
    assert len(message) == message_size
    assert frame[0] == 0x81
    size, header = frame[1], 2
    if size == 126:
        size, header = int.from_bytes(frame[2:4], "big"), 4
    elif size == 127:
        size, header = int.from_bytes(frame[2:10], "big"), 10
    assert (size, header, frame[header:]) == (message_size, 2 if size < 126 else 4 if size < 65_536 else 10, message)
    assert json.loads(message) == {"type": kind, "seq": 123_456, "data": {"message": text}}
