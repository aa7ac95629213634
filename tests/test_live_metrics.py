"""The live-push metrics move with real traffic: connections by transport, events published
and delivered, fanout latency, slow subscribers dropped."""

from __future__ import annotations

import json

from server.observability.metrics import sample_value
from server.realtime.events import Event
from server.realtime.subscriber import Subscriber
from tests.support.conditions import eventually
from tests.support.runs import trigger
from tests.support.sse_stream import SseStream


def metric_line(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in /metrics")


async def test_connections_events_and_fanout_latency(client):
    created = await trigger(client)
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    published = sample_value("collector_hub_events_published_total", {"kind": "job"})
    delivered_ws = sample_value("collector_hub_events_delivered_total", {"transport": "websocket"})
    delivered_sse = sample_value("collector_hub_events_delivered_total", {"transport": "sse"})
    fanouts = sample_value("collector_hub_fanout_latency_seconds_count")

    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "job_id": job_id})
        resp = await client.get(f"/api/collectors/runs/batch/{batch_id}/events")
        stream = SseStream(resp)
        await stream.event()  # the current state
        text = await (await client.get("/metrics")).text()
        assert metric_line(text, 'collector_hub_open_connections{transport="websocket"}') == 1
        assert metric_line(text, 'collector_hub_open_connections{transport="sse"}') == 1

        progress = {"status": "running", "progress_percent": 40, "message": "page 4"}
        assert (await client.post(f"/api/collectors/runs/job/{job_id}/progress", json=progress)).status == 200
        await stream.events_until("running")
        while True:
            message = json.loads((await ws.receive(timeout=15)).data)
            if message.get("type") == "job" and message["data"]["progress_percent"] == 40:
                break
        resp.close()

    assert sample_value("collector_hub_events_published_total", {"kind": "job"}) > published
    assert sample_value("collector_hub_events_delivered_total", {"transport": "websocket"}) > delivered_ws
    assert sample_value("collector_hub_events_delivered_total", {"transport": "sse"}) > delivered_sse
    assert sample_value("collector_hub_fanout_latency_seconds_count") > fanouts

    async def closed() -> bool:
        text = await (await client.get("/metrics")).text()
        return metric_line(text, 'collector_hub_open_connections{transport="websocket"}') == 0 and (
            metric_line(text, 'collector_hub_open_connections{transport="sse"}') == 0
        )

    await eventually(closed, what="both connections to be counted as closed")


def test_a_subscriber_over_its_bound_is_counted_as_dropped():
    dropped = sample_value("collector_hub_slow_subscribers_dropped_total", {"transport": "sse"})
    subscriber = Subscriber(limit=2, description="SSE test", transport="sse")
    for n in range(3):
        subscriber.offer(Event("job", f"zz_0000000{n}", n + 1, b"{}", "running"))
    assert subscriber.closed
    assert sample_value("collector_hub_slow_subscribers_dropped_total", {"transport": "sse"}) == dropped + 1
