"""The REST contract, field by field, against real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from server.api.timestamps import format_timestamp
from tests.support.database import execute, fetch_row, truncate
from tests.support.run_shapes import BATCH_FIELDS, BATCH_JOB_FIELDS, JOB_FIELDS
from tests.support.runs import get_json, set_job, trigger

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


async def test_trigger_returns_queued_jobs_with_contract_ids(client):
    created = await trigger(client, "ninja", "threatlocker", priority="high")
    assert re.match(r"^bc_\d{8}$", created["batch_id"])
    assert created["priority"] == "high"
    jobs = created["collectors"]
    assert [j["job_name"] for j in jobs] == ["ninja-collector", "threatlocker-collector"]
    assert re.match(r"^ni_\d{8}$", jobs[0]["job_id"])
    assert re.match(r"^th_\d{8}$", jobs[1]["job_id"])
    for job in jobs:
        assert job["status"] == "queued"
        assert TIMESTAMP.match(job["started_at"])


async def test_batch_get_has_every_spec_field(client):
    created = await trigger(client, "demo", "ninja")
    body = await get_json(client, f"/api/collectors/runs/batch/{created['batch_id']}")
    # Beyond the spec: which schedule started the batch (null here; docs/SCHEDULES.md).
    assert set(body) == BATCH_FIELDS | {"schedule"}
    assert body["schedule"] is None
    assert body["started_by"] == {"kind": "manual", "name": None}  # open mode: no key
    assert body["status"] == "queued"
    assert body["progress_percent"] == 0
    assert body["ended_at"] is None and body["duration_seconds"] is None and body["error"] is None
    assert [j["job_id"] for j in body["collectors"]] == [j["job_id"] for j in created["collectors"]]
    for job in body["collectors"]:
        assert set(job) == BATCH_JOB_FIELDS
        for field in ("started_at", "updated_at"):
            assert TIMESTAMP.match(job[field])


async def test_job_get_has_every_spec_field_and_batch_summary(client, db):
    created = await trigger(client, "demo", "ninja")
    job_id = created["collectors"][0]["job_id"]
    await set_job(db, job_id, status="running", progress_percent=70, message="Processing page 7/10")
    body = await get_json(client, f"/api/collectors/runs/job/{job_id}")
    assert set(body) == JOB_FIELDS
    assert body["batch_id"] == created["batch_id"]
    assert (body["status"], body["progress_percent"], body["message"]) == ("running", 70, "Processing page 7/10")
    assert body["batch_status"] == "running"
    assert body["batch_progress_percent"] == 35  # (70 + 0) / 2
    assert body["batch_message"].startswith("Processing collectors")


async def test_batch_aggregates_follow_jobs_through_every_transition(client, db):
    created = await trigger(client, "demo", "ninja")
    batch_path = f"/api/collectors/runs/batch/{created['batch_id']}"
    demo, ninja = (j["job_id"] for j in created["collectors"])

    await set_job(db, demo, status="running", progress_percent=50)
    body = await get_json(client, batch_path)
    assert (body["status"], body["progress_percent"]) == ("running", 25)

    await set_job(db, demo, status="completed")
    body = await get_json(client, batch_path)
    assert body["status"] == "running"  # one done, one still queued
    assert body["progress_percent"] == 50
    assert body["collectors"][0]["progress_percent"] == 100
    assert body["collectors"][0]["duration_seconds"] is not None

    await set_job(db, ninja, status="running", progress_percent=10)
    await set_job(db, ninja, status="failed", error="credentials not configured")
    body = await get_json(client, batch_path)
    assert body["status"] == "failed"
    assert body["error"] == "ninja-collector: credentials not configured"
    assert body["progress_percent"] == 55  # a failed job keeps how far it got
    assert TIMESTAMP.match(body["ended_at"])
    assert isinstance(body["duration_seconds"], int)
    assert body["estimated_completion"] is None


async def test_all_completed_batch_is_completed_at_100(client, db):
    created = await trigger(client, "demo", "ninja")
    for job in created["collectors"]:
        await set_job(db, job["job_id"], status="completed")
    body = await get_json(client, f"/api/collectors/runs/batch/{created['batch_id']}")
    assert (body["status"], body["progress_percent"], body["error"]) == ("completed", 100, None)
    assert body["message"] == "All 2 collector(s) completed"


async def test_estimated_completion_is_linear_from_progress(client, db):
    created = await trigger(client, "demo")
    job_id = created["collectors"][0]["job_id"]
    # Started 60 s ago and half done: the estimate is about 60 s from now.
    await execute(
        db,
        "UPDATE job_runs SET status = 'running', run_started_at = now() - interval '60 seconds',"
        " progress_percent = 50 WHERE job_id = %s",
        job_id,
    )
    row = await fetch_row(
        db,
        "SELECT extract(epoch FROM estimated_completion - now()) AS remaining FROM job_batches WHERE batch_id = %s",
        created["batch_id"],
    )
    assert row is not None and 55 <= row["remaining"] <= 65
    body = await get_json(client, f"/api/collectors/runs/batch/{created['batch_id']}")
    assert TIMESTAMP.match(body["estimated_completion"])


async def test_estimated_completion_uses_past_durations_before_progress(client, db):
    past = await trigger(client, "threatlocker")
    await execute(
        db,
        "UPDATE job_runs SET status = 'completed', run_started_at = now() - interval '120 seconds' WHERE job_id = %s",
        past["collectors"][0]["job_id"],
    )
    created = await trigger(client, "threatlocker")
    row = await fetch_row(
        db,
        "SELECT extract(epoch FROM estimated_completion - now()) AS remaining FROM job_batches WHERE batch_id = %s",
        created["batch_id"],
    )
    assert row is not None and 110 <= row["remaining"] <= 125


async def test_latest_prefers_active_run_then_most_recent(client, db):
    await execute(db, truncate("job_batches"))  # other tests in this module leave active runs behind
    first = await trigger(client, "ninja")
    await set_job(db, first["collectors"][0]["job_id"], status="failed", error="x")
    second = await trigger(client, "ninja")
    await set_job(db, second["collectors"][0]["job_id"], status="completed")
    body = await get_json(client, "/api/collectors/runs/latest?collectors=ninja")
    assert body["total_runs"] == 1
    assert body["latest_runs"][0]["job_id"] == second["collectors"][0]["job_id"]
    assert set(body["latest_runs"][0]) == JOB_FIELDS
    assert TIMESTAMP.match(body["generated_at"])

    active = await trigger(client, "ninja")
    body = await get_json(client, "/api/collectors/runs/latest?collectors=ninja,threatlocker")
    assert body["latest_runs"][0]["job_id"] == active["collectors"][0]["job_id"]
    assert [r["job_name"] for r in body["latest_runs"]] == ["ninja-collector", "threatlocker-collector"][
        : body["total_runs"]
    ]


async def test_history_lists_recent_runs_with_durations(client, db):
    await execute(db, truncate("job_batches"))
    created = await trigger(client, "demo")
    job_id = created["collectors"][0]["job_id"]
    await execute(
        db,
        "UPDATE job_runs SET status = 'completed', ended_at = started_at + interval '80 seconds' WHERE job_id = %s",
        job_id,
    )
    running = await trigger(client, "ninja")
    body = await get_json(client, "/api/collectors/history?limit=2")
    assert body["total_runs"] == 2
    assert [r["job_id"] for r in body["collection_history"]] == [running["collectors"][0]["job_id"], job_id]
    newest, done = body["collection_history"]
    assert (newest["duration"], newest["duration_seconds"]) == (None, None)
    assert (done["duration"], done["duration_seconds"], done["progress_percent"]) == ("1m 20s", 80, 100)
    for field in (
        "job_id",
        "job_name",
        "started_at",
        "ended_at",
        "status",
        "message",
        "progress_percent",
        "updated_at",
        "duration",
        "duration_seconds",
    ):
        assert field in done
    only_demo = await get_json(client, "/api/collectors/history?collectors=demo&limit=50")
    assert {r["job_name"] for r in only_demo["collection_history"]} == {"demo-collector"}


async def test_cancel_batch_cancels_unfinished_jobs_and_refuses_twice(client, db):
    created = await trigger(client, "demo", "ninja")
    demo, _ninja = (j["job_id"] for j in created["collectors"])
    await set_job(db, demo, status="completed")
    resp = await client.post(f"/api/collectors/runs/batch/{created['batch_id']}/cancel")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "cancelled"
    assert [j["status"] for j in body["collectors"]] == ["completed", "cancelled"]
    resp = await client.post(f"/api/collectors/runs/batch/{created['batch_id']}/cancel")
    assert resp.status == 409
    assert "already cancelled" in (await resp.json())["error"]


async def test_cancel_job_and_conflict_on_terminal_job(client, db):
    created = await trigger(client, "demo", "ninja")
    demo, _ninja = (j["job_id"] for j in created["collectors"])
    resp = await client.post(f"/api/collectors/runs/job/{demo}/cancel")
    assert resp.status == 200
    assert (await resp.json())["status"] == "cancelled"
    before = await get_json(client, f"/api/collectors/runs/job/{demo}")
    resp = await client.post(f"/api/collectors/runs/job/{demo}/cancel")
    assert resp.status == 409
    assert await resp.json() == {"error": "Job is already cancelled; terminal states are final"}
    assert await get_json(client, f"/api/collectors/runs/job/{demo}") == before
    body = await get_json(client, f"/api/collectors/runs/batch/{created['batch_id']}")
    assert body["status"] == "running"  # ninja is still queued


async def test_progress_over_http_and_terminal_is_final(client):
    created = await trigger(client, "demo")
    job_id = created["collectors"][0]["job_id"]
    path = f"/api/collectors/runs/job/{job_id}/progress"
    resp = await client.post(path, json={"status": "running", "progress_percent": 40, "message": "Page 4"})
    assert resp.status == 200
    assert (await resp.json())["progress_percent"] == 40
    resp = await client.post(path, json={"status": "completed", "message": "Done"})
    body = await resp.json()
    assert (body["status"], body["progress_percent"], body["batch_status"]) == ("completed", 100, "completed")
    resp = await client.post(path, json={"status": "running", "progress_percent": 10})
    assert resp.status == 409
    assert (await get_json(client, f"/api/collectors/runs/job/{job_id}"))["status"] == "completed"


async def test_progress_racing_cancels_never_deadlocks(client):
    """HTTP progress locks the batch before the job, as cancels do: with both orders a
    concurrent pair deadlocks and PostgreSQL aborts one (a 500 here)."""
    import asyncio

    for _ in range(5):
        created = await trigger(client, "demo", "ninja", "threatlocker")
        job_ids = [job["job_id"] for job in created["collectors"]]
        progress = [
            client.post(
                f"/api/collectors/runs/job/{job_id}/progress", json={"status": "running", "progress_percent": p}
            )
            for p in range(1, 8)
            for job_id in job_ids
        ]
        cancels = [client.post(f"/api/collectors/runs/job/{job_id}/cancel") for job_id in job_ids]
        cancels.append(client.post(f"/api/collectors/runs/batch/{created['batch_id']}/cancel"))
        responses = await asyncio.gather(*progress, *cancels)
        assert sorted({resp.status for resp in responses}) in ([200], [200, 409], [409])
        batch = await get_json(client, f"/api/collectors/runs/batch/{created['batch_id']}")
        assert batch["status"] == "cancelled"


async def test_unknown_ids_are_404_with_contract_messages(client):
    assert await get_json(client, "/api/collectors/runs/batch/bc_00000000", 404) == {"error": "Batch not found"}
    assert await get_json(client, "/api/collectors/runs/job/ni_00000000", 404) == {"error": "Job not found"}
    for path in ("/api/collectors/runs/batch/bc_00000000/cancel", "/api/collectors/runs/job/ni_00000000/cancel"):
        resp = await client.post(path)
        assert resp.status == 404
        assert "not found" in (await resp.json())["error"]


@pytest.mark.parametrize("path", ["/nope", "/api/collectors/runs/batch", "/api/collectors/runs/batch/bc_1/x/y"])
async def test_unknown_paths_answer_json(client, path):
    body = await get_json(client, path, 404)
    assert body == {"error": "Not found"}


async def test_wrong_method_answers_json_405(client):
    resp = await client.delete("/api/collectors/run")
    assert resp.status == 405
    assert (await resp.json())["error"] == "Method DELETE not allowed"
    assert "POST" in resp.headers["Allow"]


async def test_etag_and_304_on_batch_and_job(client, db):
    created = await trigger(client, "demo")
    for path in (
        f"/api/collectors/runs/batch/{created['batch_id']}",
        f"/api/collectors/runs/job/{created['collectors'][0]['job_id']}",
    ):
        resp = await client.get(path)
        etag = resp.headers["ETag"]
        resp = await client.get(path, headers={"If-None-Match": etag})
        assert resp.status == 304
        assert await resp.read() == b""
    await set_job(db, created["collectors"][0]["job_id"], status="running", progress_percent=5)
    resp = await client.get(path, headers={"If-None-Match": etag})
    assert resp.status == 200
    assert resp.headers["ETag"] != etag


async def test_latest_etag_never_hides_a_change_that_committed_after_the_read(client, db, database_url):
    """The version of a latest answer is the newest seq in it, so a write that was in flight
    during the read (its seq already handed out) still changes the ETag once it commits."""
    import psycopg2

    created = await trigger(client, "threatlocker")
    job_id = created["collectors"][0]["job_id"]
    path = "/api/collectors/runs/latest?collectors=threatlocker"
    writer = psycopg2.connect(database_url)  # not autocommit: the update stays in flight
    try:
        with writer.cursor() as cur:
            cur.execute("UPDATE job_runs SET status = 'running', progress_percent = 50 WHERE job_id = %s", (job_id,))
        resp = await client.get(path)
        assert (await resp.json())["latest_runs"][0]["progress_percent"] is None
        etag = resp.headers["ETag"]
        writer.commit()
    finally:
        writer.close()
    resp = await client.get(path, headers={"If-None-Match": etag})
    assert resp.status == 200
    assert (await resp.json())["latest_runs"][0]["progress_percent"] == 50
    again = await client.get(path, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2026, 11, 29, 22, 35, 35, 14856, tzinfo=dt.timezone(dt.timedelta(hours=2))),
         "2026-11-29T20:35:35.014856Z"),
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2026-01-02T03:04:05.000000Z"),  # no microseconds: six zeros
        (dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-1))), "2027-01-01T00:30:00.000000Z"),
        (None, None),
    ],
)  # fmt: skip
def test_timestamps_are_written_in_utc_with_microseconds_and_z(value: dt.datetime | None, text: str | None) -> None:
    assert format_timestamp(value) == text
    assert text is None or TIMESTAMP.match(text)
