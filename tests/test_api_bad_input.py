"""Every kind of bad input gets a 4xx {"error": ...} and leaves the database as it was."""

from __future__ import annotations

import json

import pytest


def snapshot(db):
    with db.cursor() as cur:
        cur.execute(
            "SELECT (SELECT coalesce(json_agg(b ORDER BY batch_id), '[]') FROM job_batches b),"
            "       (SELECT coalesce(json_agg(j ORDER BY job_id), '[]') FROM job_runs j),"
            "       (SELECT last_value FROM collector_hub_seq)"
        )
        return cur.fetchone()


@pytest.fixture
async def existing_job(client):
    resp = await client.post("/api/collectors/run", json={"collectors": ["demo"]})
    return (await resp.json())["collectors"][0]["job_id"]


BAD_TRIGGERS = [
    (b"{not json", "Malformed JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"demo"', "must be a JSON object"),
    (b"", "must be a JSON object"),
    (b"\xff\xfe{}", "UTF-8"),
    (b"[" * 60000, "Malformed JSON"),
    (json.dumps({}).encode(), "collectors must be a non-empty list"),
    (json.dumps({"collectors": []}).encode(), "collectors must be a non-empty list"),
    (json.dumps({"collectors": "demo"}).encode(), "collectors must be a non-empty list"),
    (json.dumps({"collectors": None}).encode(), "collectors must be a non-empty list"),
    (json.dumps({"collectors": [1]}).encode(), "collector names (strings)"),
    (json.dumps({"collectors": [["demo"]]}).encode(), "collector names (strings)"),
    (json.dumps({"collectors": ["demo", "demo"]}).encode(), "more than once: demo"),
    (json.dumps({"collectors": ["nope"]}).encode(), "Known collectors: cross-vendor-checks, demo, ninja, threatlocker"),
    (json.dumps({"collectors": ["demo"], "priority": "urgent"}).encode(), "priority must be one of"),
    (json.dumps({"collectors": ["demo"], "priority": 1}).encode(), "priority must be one of"),
    (json.dumps({"collectors": ["demo"], "priorty": "high"}).encode(), "Unknown field(s): 'priorty'"),
]


@pytest.mark.parametrize(("raw", "expected"), BAD_TRIGGERS)
async def test_bad_trigger_bodies(client, db, raw, expected):
    before = snapshot(db)
    resp = await client.post("/api/collectors/run", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    body = await resp.json()
    assert set(body) == {"error"}
    assert expected in body["error"]
    assert snapshot(db) == before


async def test_unknown_collector_error_lists_known_ones(client):
    resp = await client.post("/api/collectors/run", json={"collectors": ["demo", "crowdstrike"]})
    assert (await resp.json())["error"] == (
        "Unknown collector(s): 'crowdstrike'. Known collectors: cross-vendor-checks, demo, ninja, threatlocker"
    )


async def test_body_over_the_limit_is_413(client, db):
    before = snapshot(db)
    padding = "x" * (200 * 1024)
    resp = await client.post(
        "/api/collectors/run",
        data=json.dumps({"collectors": ["demo"], "p": padding}),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert await resp.json() == {
        "error": "Request body too large: the limit is 65536 bytes (COLLECTOR_HUB_MAX_BODY_BYTES)"
    }
    assert snapshot(db) == before


async def test_form_encoded_body_is_415(client, db):
    before = snapshot(db)
    resp = await client.post("/api/collectors/run", data={"collectors": "demo"})
    assert resp.status == 415
    assert "application/json" in (await resp.json())["error"]
    assert snapshot(db) == before


async def test_fetch_without_content_type_still_works(client):
    # The spec's migration example posts JSON with no Content-Type (browsers send text/plain).
    resp = await client.post(
        "/api/collectors/run",
        data=json.dumps({"collectors": ["demo"]}),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert resp.status == 201


@pytest.mark.parametrize(
    "path",
    [
        "/api/collectors/runs/batch/12345678",
        "/api/collectors/runs/batch/bc_123",
        "/api/collectors/runs/batch/bc_123456789",
        "/api/collectors/runs/batch/BC_12345678",
        "/api/collectors/runs/batch/bc_1234567%00",
        "/api/collectors/runs/job/n_12345678",
        "/api/collectors/runs/job/ni-12345678",
        "/api/collectors/runs/job/ni_1234567x",
        "/api/collectors/runs/job/%27%20OR%201=1--",
    ],
)
async def test_malformed_ids_in_paths_are_404_not_found(client, path):
    """The seed's clients (and the integration guide) treat an invalid batch id as a 404, and
    its own mock data uses ids such as bc_test123. The id is not echoed back."""
    kind = "Batch" if "/batch/" in path else "Job"
    for method, url in (("GET", path), ("POST", path + "/cancel"), ("GET", path + "/events")):
        resp = await client.request(method, url)
        assert resp.status == 404, (method, url)
        error = (await resp.json())["error"]
        assert error.startswith(f"{kind} not found"), error
        assert "12345678" in error or "look like" in error  # the expected shape, not the id sent
    if kind == "Job":
        resp = await client.post(path + "/progress", json={"status": "running"})
        assert resp.status == 404 and (await resp.json())["error"].startswith("Job not found")


async def test_the_guides_mock_batch_id_is_a_404(client):
    resp = await client.get("/api/collectors/runs/batch/bc_test123")
    assert resp.status == 404
    assert (await resp.json())["error"].startswith("Batch not found")


async def test_malformed_ids_in_bodies_and_queries_stay_400(client):
    resp = await client.get("/api/collectors/runs/latest?collectors=bc_test123")
    assert resp.status == 400


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=-1", "limit=abc", "limit=1.5", "limit=", "limit=99999999999999999999"],
)
async def test_history_limit_out_of_range(client, query):
    resp = await client.get(f"/api/collectors/history?{query}")
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert "limit must be" in error and "between 1 and 500" in error, error  # the range, not only "an integer"


@pytest.mark.parametrize("query", ["collectors=nope", "collectors=demo,demo", "collectors=,", "collectors="])
async def test_latest_bad_collectors(client, query):
    resp = await client.get(f"/api/collectors/runs/latest?{query}")
    assert resp.status == 400
    assert "collector" in (await resp.json())["error"]


BAD_PROGRESS = [
    ({"status": "queued"}, "status must be one of"),
    ({"status": "done"}, "status must be one of"),
    ({}, "status must be one of"),
    ({"status": "running", "progress_percent": 101}, "progress_percent must be"),
    ({"status": "running", "progress_percent": -1}, "progress_percent must be"),
    ({"status": "running", "progress_percent": 50.5}, "progress_percent must be"),
    ({"status": "running", "progress_percent": True}, "progress_percent must be"),
    ({"status": "running", "progress_percent": "50"}, "progress_percent must be"),
    ({"status": "running", "message": 5}, "message must be a string"),
    ({"status": "running", "message": "x" * 1001}, "at most 1000 characters"),
    ({"status": "running", "message": "a\u0000b"}, "NUL"),
    ({"status": "running", "message": "\ud800"}, "lone surrogates"),
    ({"status": "running", "error": ["x"]}, "error must be a string"),
    ({"status": "running", "percent": 5}, "Unknown field(s): 'percent'"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_PROGRESS)
async def test_bad_progress_reports(client, db, existing_job, body, expected):
    before = snapshot(db)
    resp = await client.post(f"/api/collectors/runs/job/{existing_job}/progress", json=body)
    assert resp.status == 400, await resp.text()
    assert expected in (await resp.json())["error"]
    assert snapshot(db) == before


async def test_progress_for_unknown_job_is_404_and_writes_nothing(client, db):
    before = snapshot(db)
    resp = await client.post("/api/collectors/runs/job/ni_00000000/progress", json={"status": "running"})
    assert resp.status == 404
    assert snapshot(db) == before
