"""Request ids, the access log and /metrics."""

from __future__ import annotations

import json
import logging

from server.keys import POOL
from server.observability.log_format import JsonFormatter
from server.observability.metrics import sample_value
from tests.support.conditions import eventually


async def test_every_response_carries_a_request_id_and_a_client_id_is_kept(client):
    resp = await client.get("/healthz")
    generated = resp.headers["X-Request-Id"]
    assert len(generated) == 32
    assert (await client.get("/healthz")).headers["X-Request-Id"] != generated
    kept = await client.get("/healthz", headers={"X-Request-Id": "proxy-42.a:b"})
    assert kept.headers["X-Request-Id"] == "proxy-42.a:b"
    replaced = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert replaced.headers["X-Request-Id"] != "bad id\twith spaces"
    missing = await client.get("/api/nope")
    assert missing.status == 404 and missing.headers["X-Request-Id"]


async def test_one_access_line_per_request_with_the_id_and_no_token(client, caplog):
    caplog.set_level(logging.INFO, logger="collector_hub.access")
    secret = "s3cr3t-value-never-logged"
    # Only the live streams take a credential in the URL: elsewhere it is an unknown parameter
    # (400), and the URL is logged without it all the same.
    resp = await client.get(f"/api/collectors/history?limit=2&access_token={secret}", headers={"X-Request-Id": "r-1"})
    assert resp.status == 400
    lines = [r for r in caplog.records if r.name == "collector_hub.access"]
    assert len(lines) == 1
    text = lines[0].getMessage()
    assert "r-1" in text and "GET /api/collectors/history?limit=2&access_token=REDACTED" in text and " 400 " in text
    assert secret not in text
    assert lines[0].__dict__["request_id"] == "r-1"


def test_json_log_lines_carry_the_access_fields():
    record = logging.LogRecord("collector_hub.access", logging.INFO, __file__, 1, "line %s", ("x",), None)
    record.__dict__.update(request_id="r-2", status=200, path="/healthz")
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "line x" and line["request_id"] == "r-2" and line["status"] == 200
    assert line["time"].endswith("Z") and line["level"] == "INFO"


async def test_metrics_count_requests_by_route_template_and_jobs_by_status(client):
    labels = {"method": "GET", "route": "/api/collectors/runs/job/{job_id}", "status": "404"}
    before = sample_value("collector_hub_http_requests_total", labels)
    created = await (await client.post("/api/collectors/run", json={"collectors": ["demo"]})).json()
    for _ in range(3):
        assert (await client.get("/api/collectors/runs/job/zz_00000000")).status == 404
    assert sample_value("collector_hub_http_requests_total", labels) == before + 3
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert (
        'collector_hub_http_requests_total{method="GET",route="/api/collectors/runs/job/{job_id}",status="404"}' in text
    )
    queued = [line for line in text.splitlines() if line.startswith('collector_hub_jobs{status="queued"}')]
    assert queued and float(queued[0].split()[-1]) >= len(created["collectors"])
    for name in (
        "collector_hub_open_connections",
        "collector_hub_events_published_total",
        "collector_hub_events_delivered_total",
        "collector_hub_fanout_latency_seconds",
        "collector_hub_slow_subscribers_dropped_total",
        "collector_hub_webhook_attempts_total",
        "collector_hub_rate_limited_requests_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


async def test_lines_logged_while_handling_a_request_carry_its_id(aiohttp_client, settings):
    from aiohttp import web

    from server.api.roles import requires
    from server.app import create_app
    from server.observability.log_format import RequestIdFilter

    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    @requires("public")
    async def noisy(request: web.Request) -> web.Response:
        logging.getLogger("collector_hub.test").warning("inside the handler")
        return web.json_response({})

    app = create_app(settings)
    app.router.add_get("/noisy", noisy)
    client = await aiohttp_client(app)
    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("collector_hub.test")
    logger.addHandler(handler)
    try:
        await client.get("/noisy", headers={"X-Request-Id": "inner-1"})
    finally:
        logger.removeHandler(handler)
    assert [r.__dict__.get("request_id") for r in seen] == ["inner-1"]
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "outside", (), None)
    assert RequestIdFilter().filter(outside) and not hasattr(outside, "request_id")


async def test_task_and_fd_gauges_follow_open_connections(client):
    pool = client.app[POOL]

    def gauges(text: str) -> tuple[float, float]:
        """Tasks, and descriptors other than the database pool's: the pool opens its second
        connection when two background loops first need one at once, which may come after the
        first reading (seen under load as one descriptor more at the end than at the start)."""
        found = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in ("collector_hub_event_loop_tasks", "collector_hub_open_fds"):
                found[name] = float(value)
        return found["collector_hub_event_loop_tasks"], found["collector_hub_open_fds"] - pool.size

    readings: list[tuple[float, float]] = []

    async def settled() -> tuple[float, float] | None:
        """The gauges once two readings in a row agree: the app's background loops take their
        first ticks one after another (server/background.py), each then waiting on its interval
        with one task more than before."""
        readings.append(gauges(await (await client.get("/metrics")).text()))
        return readings[-1] if len(readings) > 1 and readings[-1] == readings[-2] else None

    tasks, fds = await eventually(settled, what="the app's tasks and descriptors to settle")
    assert tasks >= 1 and fds >= 1
    sockets = [await client.ws_connect("/api/ws") for _ in range(3)]
    for ws in sockets:  # answered: the server side of each connection is up
        await ws.send_json({"op": "ping"})
        assert (await ws.receive_json(timeout=15))["type"] == "pong"
    more_tasks, more_fds = gauges(await (await client.get("/metrics")).text())
    assert more_tasks >= tasks + 3 and more_fds >= fds + 3
    for ws in sockets:
        await ws.close()

    async def back_down() -> bool:
        now_tasks, now_fds = gauges(await (await client.get("/metrics")).text())
        return now_tasks <= tasks and now_fds <= fds

    await eventually(back_down, what="tasks and descriptors of the closed connections to be gone")
