"""The run-operations endpoints (history, batches, re-run, logs, stats, runners) answer as the
OpenAPI document says, every documented status provoked; every route's documented query
parameters are exactly the ones it accepts."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from server.api.roles import STREAM_TOKEN_NAME
from server.api.validation import accepted_query
from server.security.cors import is_preflight_route
from tests.support.database import execute
from tests.support.openapi_contract import NOT_PROVOKED, UNKNOWN_BATCH, UNKNOWN_JOB, Contract
from tests.support.runs import set_job, trigger

OPERATIONS = (
    ("GET", "/api/collectors/history"),
    ("GET", "/api/collectors/batches"),
    ("POST", "/api/collectors/runs/batch/{batch_id}/rerun"),
    ("POST", "/api/collectors/runs/job/{job_id}/rerun"),
    ("GET", "/api/collectors/runs/job/{job_id}/logs"),
    ("GET", "/api/collectors/stats"),
    ("GET", "/api/runners"),
)


def add_log_lines(db, job_id, count):
    now = dt.datetime.now(dt.UTC)
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO job_logs (job_id, line_no, stream, progress, logged_at, text) VALUES (%s, %s, %s, %s, %s, %s)",
            [(job_id, n, "stdout" if n % 2 else "stderr", n == 3, now, f"line {n}") for n in range(1, count + 1)],
        )


async def test_run_operations_match_the_document(client, db):
    doc = await (await client.get("/api/openapi.json")).json()
    c = Contract(doc)
    await trigger(client, "threatlocker")
    created = await trigger(client, "demo", "ninja")
    demo, ninja = (j["job_id"] for j in created["collectors"])
    batch = {"batch_id": created["batch_id"]}
    await c.call(client, "POST", OPERATIONS[2][1], 409, path=batch, json={"only": "all"})
    await c.call(client, "POST", OPERATIONS[3][1], 409, path={"job_id": demo})
    await set_job(db, demo, status="completed", run_started_at=dt.datetime.now(dt.UTC))
    await set_job(db, ninja, status="failed", error="boom")
    add_log_lines(db, demo, 5)
    await execute(
        db,
        "INSERT INTO runners (runner_id, host, collectors, capacity) VALUES ('r1', 'h', '{demo}', 2)"
        " ON CONFLICT DO NOTHING",
    )

    for template in (OPERATIONS[0][1], OPERATIONS[1][1]):
        await c.call(client, "GET", template, 200, params={"status": "failed,completed", "since": "2026-01-01"})
        first = await c.call(client, "GET", template, 200, params={"limit": "1"})
        await c.call(client, "GET", template, 200, params={"cursor": first["next_cursor"], "collectors": "demo"})
        await c.call(client, "GET", template, 400, params={"since": "tomorrow"})
    rerun = await c.call(client, "POST", OPERATIONS[2][1], 201, path=batch, json={"only": "failed"})
    assert rerun["collectors"][0]["collector"] == "ninja"
    await c.call(client, "POST", OPERATIONS[2][1], 400, path=batch, json={"only": "x"})
    await c.call(client, "POST", OPERATIONS[2][1], 413, path=batch, data=b"{" * 70000)
    await c.call(client, "POST", OPERATIONS[2][1], 415, path=batch, data=b"{}", headers={"Content-Type": "text/xml"})
    await c.call(client, "POST", OPERATIONS[2][1], 404, path=UNKNOWN_BATCH)
    await c.call(client, "POST", OPERATIONS[3][1], 201, path={"job_id": demo})
    await c.call(client, "POST", OPERATIONS[3][1], 400, path={"job_id": demo}, json={"x": 1})
    await c.call(client, "POST", OPERATIONS[3][1], 413, path={"job_id": demo}, data=b"{" * 70000)
    await c.call(
        client, "POST", OPERATIONS[3][1], 415, path={"job_id": demo}, data=b"{}", headers={"Content-Type": "text/xml"}
    )
    await c.call(client, "POST", OPERATIONS[3][1], 404, path=UNKNOWN_JOB)
    logs = await c.call(
        client, "GET", OPERATIONS[4][1], 200, path={"job_id": demo}, params={"after": "1", "limit": "2"}
    )
    assert [line["line"] for line in logs["lines"]] == [2, 3] and logs["lines"][1]["progress"] is True
    await c.call(client, "GET", OPERATIONS[4][1], 400, path={"job_id": demo}, params={"limit": "0"})
    await c.call(client, "GET", OPERATIONS[4][1], 404, path=UNKNOWN_JOB)
    await c.call(client, "GET", OPERATIONS[5][1], 200, params={"window": "24h"})
    await c.call(client, "GET", OPERATIONS[5][1], 200, params={"window": "30d", "collectors": "demo"})
    await c.call(client, "GET", OPERATIONS[5][1], 400, params={"window": "91d"})
    await c.call(client, "GET", OPERATIONS[6][1], 200)
    await c.call(client, "GET", OPERATIONS[6][1], 400, params={"x": "1"})

    unprovoked = sorted(
        f"{method} {template} {status}"
        for method, template in OPERATIONS
        for status in doc["paths"][template][method.lower()]["responses"]
        if status not in NOT_PROVOKED - {"413"} and (method, template, status) not in c.seen
    )
    assert not unprovoked, "documented but never seen: " + ", ".join(unprovoked)


async def test_documented_query_parameters_are_the_accepted_ones(client):
    doc = await (await client.get("/api/openapi.json")).json()
    wrong = []
    for route in client.app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method == "HEAD":
            continue
        if is_preflight_route(route):
            continue
        op = doc["paths"][resource.canonical][route.method.lower()]
        documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"} - {STREAM_TOKEN_NAME}
        if documented != set(accepted_query(route.handler)):
            wrong.append(f"{route.method} {resource.canonical}: documented {sorted(documented)}")
    assert wrong == []
