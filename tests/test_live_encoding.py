"""Encode once, send many: a change is turned into JSON once per process, however many
clients follow it, and every client gets the same bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.realtime import events
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

        encoded: list[bytes] = []
        real_encode = events.encode_body

        def counting_encode(body: dict[str, Any]) -> bytes:
            data = real_encode(body)
            if body.get("batch_id") == batch_id and "collectors" in body:  # the batch body
                encoded.append(data)
            return data

        monkeypatch.setattr(events, "encode_body", counting_encode)
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


async def test_a_job_state_that_nobody_reads_is_not_encoded(client, db, monkeypatch: pytest.MonkeyPatch):
    created = await trigger(client, "demo")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    stream = SseStream(await client.get(f"/api/collectors/runs/batch/{batch_id}/events"))
    try:
        assert (await stream.event())["event"] == "batch"
        encoded: list[dict[str, Any]] = []
        real_encode = events.encode_body

        def recording_encode(body: dict[str, Any]) -> bytes:
            encoded.append(body)
            return real_encode(body)

        monkeypatch.setattr(events, "encode_body", recording_encode)
        await set_job(db, job_id, status="running", progress_percent=40)
        assert json.loads((await stream.event())["data"])["collectors"][0]["progress_percent"] == 40
        assert [body.get("batch_id") for body in encoded] == [batch_id], "only the batch's body, followed"
        assert "collectors" in encoded[0]
        ws = await client.ws_connect("/api/ws")  # a reader of the job: its body is encoded now
        await ws.send_json({"op": "subscribe", "job_id": job_id})
        while (message := json.loads((await ws.receive(timeout=15)).data))["type"] != "job":
            pass
        assert message["data"] == await (await client.get(f"/api/collectors/runs/job/{job_id}")).json()
        assert message["data"]["progress_percent"] == 40
        await ws.close()
    finally:
        stream.close()
