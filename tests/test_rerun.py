"""Re-run: a new batch that names what it re-runs; terminal jobs never change (ARCHITECTURE rule 12)."""

from __future__ import annotations

from tests.support.database import execute
from tests.support.runs import get_json, set_job, trigger


def job_rows(db, batch_id):
    with db.cursor() as cur:
        cur.execute("SELECT job_id, status, seq FROM job_runs WHERE batch_id = %s ORDER BY position", (batch_id,))
        return cur.fetchall()


async def test_a_failed_batch_reruns_its_failed_and_cancelled_jobs_in_one_request(client, db):
    created = await trigger(client, "demo", "ninja", "threatlocker", priority="high")
    demo, ninja, threat = (j["job_id"] for j in created["collectors"])
    await set_job(db, demo, status="completed")
    await set_job(db, ninja, status="failed", error="boom")
    await set_job(db, threat, status="cancelled")
    before = job_rows(db, created["batch_id"])

    resp = await client.post(f"/api/collectors/runs/batch/{created['batch_id']}/rerun", json={"only": "failed"})
    assert resp.status == 201, await resp.text()
    rerun = await resp.json()
    assert set(rerun) == set(created)  # the shape of POST /api/collectors/run
    assert [j["collector"] for j in rerun["collectors"]] == ["ninja", "threatlocker"]
    assert rerun["priority"] == "high" and rerun["status"] == "queued"
    assert job_rows(db, created["batch_id"]) == before  # the original is untouched

    batch = await get_json(client, f"/api/collectors/runs/batch/{rerun['batch_id']}")
    assert batch["rerun_of"] == created["batch_id"]
    assert [j["rerun_of"] for j in batch["collectors"]] == [ninja, threat]
    job = await get_json(client, f"/api/collectors/runs/job/{rerun['collectors'][0]['job_id']}")
    assert job["rerun_of"] == ninja
    original = await get_json(client, f"/api/collectors/runs/batch/{created['batch_id']}")
    assert original["rerun_of"] is None

    resp = await client.post(f"/api/collectors/runs/batch/{created['batch_id']}/rerun", json={"only": "all"})
    assert resp.status == 201
    assert [j["collector"] for j in (await resp.json())["collectors"]] == ["demo", "ninja", "threatlocker"]
    resp = await client.post(f"/api/collectors/runs/batch/{created['batch_id']}/rerun")  # no body: all
    assert resp.status == 201


async def test_rerun_refusals_change_nothing(client, db):
    running = await trigger(client, "demo")
    done = await trigger(client, "demo")
    await set_job(db, done["collectors"][0]["job_id"], status="completed")
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM job_batches")
        before = cur.fetchone()

    async def refused(path, body, status, words):
        resp = await client.post(path, json=body)
        assert resp.status == status, await resp.text()
        assert words in (await resp.json())["error"]

    await refused(f"/api/collectors/runs/batch/{running['batch_id']}/rerun", {"only": "all"}, 409, "still queued")
    await refused(f"/api/collectors/runs/batch/{done['batch_id']}/rerun", {"only": "failed"}, 409, "no failed")
    await refused(f"/api/collectors/runs/batch/{done['batch_id']}/rerun", {"only": "some"}, 400, "only must be")
    await refused(f"/api/collectors/runs/batch/{done['batch_id']}/rerun", {"ony": "all"}, 400, "Unknown field")
    await refused("/api/collectors/runs/batch/bc_00000000/rerun", {}, 404, "not found")
    await refused(f"/api/collectors/runs/job/{running['collectors'][0]['job_id']}/rerun", {}, 409, "still queued")
    await refused("/api/collectors/runs/job/zz_00000000/rerun", {}, 404, "not found")
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM job_batches")
        assert cur.fetchone() == before


async def test_a_job_reruns_alone_in_a_new_batch(client, db):
    created = await trigger(client, "demo", "ninja")
    demo = created["collectors"][0]["job_id"]
    await set_job(db, demo, status="completed")
    resp = await client.post(f"/api/collectors/runs/job/{demo}/rerun")
    assert resp.status == 201
    rerun = await resp.json()
    assert [j["collector"] for j in rerun["collectors"]] == ["demo"]
    batch = await get_json(client, f"/api/collectors/runs/batch/{rerun['batch_id']}")
    assert (batch["rerun_of"], batch["collectors"][0]["rerun_of"]) == (created["batch_id"], demo)


async def test_a_collector_no_longer_configured_cannot_rerun(client, db):
    await execute(db, "INSERT INTO job_batches (batch_id) VALUES ('bc_00000077')")
    await execute(
        db,
        "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status)"
        " VALUES ('ol_00000077', 'bc_00000077', 'oldone', 'oldone-collector', 'failed')",
    )
    resp = await client.post("/api/collectors/runs/batch/bc_00000077/rerun", json={"only": "failed"})
    assert resp.status == 409
    assert "oldone" in (await resp.json())["error"]
