"""The live-push metrics move with real traffic: connections by transport, events published
and delivered, fanout latency, slow subscribers dropped."""

from __future__ import annotations

import json
import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from server.observability.metrics import PlainCounter, PlainHistogram, sample_value
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


def test_plain_metrics_are_exported_as_prometheus_client_exports_its_own():
    """The hot path's plain integers (events published and delivered, fanout latency) give
    /metrics the same series and format as prometheus_client's Counter and Histogram, values
    on bucket bounds included; only the ``_created`` times differ."""
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("t_events", "Events.", ["kind"], registry=theirs)
    plain_counter = PlainCounter("t_events", "Events.", "kind", ours)
    histogram = Histogram("t_latency_seconds", "Latency.", buckets=(0.0005, 0.001, 1, 2.5), registry=theirs)
    plain_histogram = PlainHistogram("t_latency_seconds", "Latency.", (0.0005, 0.001, 1, 2.5), ours)
    for value in (0.0005, 0.0001, 0.001, 0.7, 3.0, 1.0, 2.5, 0.0):
        histogram.observe(value)
        plain_histogram.observe(value)
    counter.labels("job").inc(3)
    plain_counter.labels("job").count += 3
    counter.labels("batch")
    plain_counter.labels("batch")

    def exposition(registry: CollectorRegistry) -> str:
        return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", generate_latest(registry).decode())

    assert exposition(ours) == exposition(theirs)
    assert 't_latency_seconds_bucket{le="0.0005"} 3.0' in exposition(ours)
    assert 't_events_total{kind="job"} 3.0' in exposition(ours)
