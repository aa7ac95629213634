"""Searchable history: filters that combine, cursors that page without gaps or repeats while runs
are inserted, the batch listing, collectors no longer configured, and bad input."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from tests.support.database import execute, truncate
from tests.support.runs import get_json, set_job, trigger


@pytest.fixture(autouse=True)
def empty(db):
    with db.cursor() as cur:
        cur.execute(truncate("job_batches"))


def insert_runs(db, rows):
    """rows: (batch_id, job_id, collector, status, started_at) inserted straight into the tables."""
    with db.cursor() as cur:
        for batch_id, job_id, collector, status, started_at in rows:
            cur.execute(
                "INSERT INTO job_batches (batch_id, started_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (batch_id, started_at),
            )
            cur.execute(
                "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status, started_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (job_id, batch_id, collector, f"{collector}-collector", status, started_at),
            )


async def page_through(client, query):
    seen, cursor, pages = [], None, 0
    while True:
        path = f"/api/collectors/history?{query}" + (f"&cursor={cursor}" if cursor else "")
        body = await get_json(client, path)
        seen += [row["job_id"] for row in body["collection_history"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


async def test_filters_combine(client, db):
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    insert_runs(
        db,
        [
            ("bc_00000001", "de_00000001", "demo", "completed", base),
            ("bc_00000001", "ni_00000001", "ninja", "failed", base),
            ("bc_00000002", "de_00000002", "demo", "failed", base + dt.timedelta(hours=1)),
            ("bc_00000003", "de_00000003", "demo", "cancelled", base + dt.timedelta(hours=2)),
            ("bc_00000004", "th_00000004", "threatlocker", "failed", base + dt.timedelta(hours=3)),
        ],
    )

    async def ids(query):
        body = await get_json(client, f"/api/collectors/history?limit=50&{query}")
        return [row["job_id"] for row in body["collection_history"]]

    assert await ids("status=failed") == ["th_00000004", "de_00000002", "ni_00000001"]
    assert await ids("status=failed,cancelled&collectors=demo") == ["de_00000003", "de_00000002"]
    assert await ids("status=failed&status=cancelled&collectors=demo") == ["de_00000003", "de_00000002"]
    assert await ids("collectors=demo,ninja&status=failed") == ["de_00000002", "ni_00000001"]
    assert await ids("batch_id=bc_00000001") == ["ni_00000001", "de_00000001"]
    assert await ids("since=2026-01-01T01:00:00Z&until=2026-01-01T03:00:00Z") == ["de_00000003", "de_00000002"]
    assert await ids("since=2026-01-01T02:00:00%2B01:00") == await ids("since=2026-01-01T01:00:00Z")
    assert await ids("since=2026-01-01T02:00:00+01:00") == await ids("since=2026-01-01T01:00:00Z")
    # An offset Python takes and PostgreSQL does not (over 15:59): the same instant in UTC.
    assert await ids("since=2026-01-01T22:10:00%2B21:10") == await ids("since=2026-01-01T01:00:00Z")
    assert await ids("collectors=demo&status=failed&since=2026-01-01T00:30:00Z") == ["de_00000002"]


async def test_pages_have_no_gaps_or_repeats_while_runs_are_inserted(client, db):
    base = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(60):
        # Pairs share a start time (jobs of one batch do), so the job id breaks ties.
        started = base + dt.timedelta(minutes=i // 2)
        collector = ("demo", "ninja", "threatlocker")[i % 3]
        rows.append((f"bc_{i // 2:08d}", f"{collector[:2]}_{i:08d}", collector, "completed", started))
    insert_runs(db, rows)
    expected = sorted((r for r in rows), key=lambda r: (r[4], r[1]), reverse=True)

    seen, cursor = [], None
    for _ in range(100):
        path = "/api/collectors/history?limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = await get_json(client, path)
        seen += [row["job_id"] for row in body["collection_history"]]
        # Meanwhile new runs arrive (newer than everything: they belong before page one) ...
        await trigger(client, "demo")
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [r[1] for r in expected]

    demo_seen, _ = await page_through(client, "collectors=demo,ninja&limit=4&until=2026-03-01T00:00:00Z")
    assert demo_seen == [r[1] for r in expected if r[2] in ("demo", "ninja")]


async def test_batches_list_with_job_statuses_and_duration(client, db):
    first = await trigger(client, "demo", "ninja")
    demo, ninja = (j["job_id"] for j in first["collectors"])
    await set_job(db, demo, status="completed")
    await set_job(db, ninja, status="failed", error="boom")
    await execute(
        db,
        "UPDATE job_batches SET ended_at = started_at + interval '65 seconds' WHERE batch_id = %s",
        first["batch_id"],
    )
    second = await trigger(client, "threatlocker")
    body = await get_json(client, "/api/collectors/batches")
    assert [b["batch_id"] for b in body["batches"]] == [second["batch_id"], first["batch_id"]]
    done = body["batches"][1]
    assert done["status"] == "failed"
    assert done["collectors"] == ["demo", "ninja"]
    assert done["job_statuses"] == {"queued": 0, "running": 0, "completed": 1, "failed": 1, "cancelled": 0}
    assert (done["duration"], done["duration_seconds"]) == ("1m 5s", 65)
    assert body["batches"][0]["duration_seconds"] is None

    only_failed = await get_json(client, "/api/collectors/batches?status=failed")
    assert [b["batch_id"] for b in only_failed["batches"]] == [first["batch_id"]]
    by_collector = await get_json(client, "/api/collectors/batches?collectors=threatlocker")
    assert [b["batch_id"] for b in by_collector["batches"]] == [second["batch_id"]]
    page = await get_json(client, "/api/collectors/batches?limit=1")
    rest = await get_json(client, f"/api/collectors/batches?limit=1&cursor={page['next_cursor']}")
    assert [b["batch_id"] for b in page["batches"] + rest["batches"]] == [second["batch_id"], first["batch_id"]]
    assert rest["next_cursor"] is None


async def test_a_collector_no_longer_configured_stays_queryable(client, db):
    insert_runs(db, [("bc_00000009", "ol_00000009", "oldone", "completed", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))])
    body = await get_json(client, "/api/collectors/history?collectors=oldone,demo")
    assert [row["job_id"] for row in body["collection_history"]] == ["ol_00000009"]
    assert body["unconfigured_collectors"] == ["oldone"]
    latest = await get_json(client, "/api/collectors/runs/latest?collectors=oldone")
    assert [row["job_id"] for row in latest["latest_runs"]] == ["ol_00000009"]
    assert latest["unconfigured_collectors"] == ["oldone"]
    resp = await client.get("/api/collectors/history?collectors=never-ran")
    assert resp.status == 400
    assert "never-ran" in (await resp.json())["error"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=Zm9vfGJhcg", "cursor"),  # base64 of "foo|bar"
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("until=0001-01-01T00:00:00%2B01:00", "until"),  # the year 0 in UTC
        ("status=done", "status"),
        ("status=", "status"),
        ("batch_id=bc_1", "batch id"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("collectors=demo,demo", "more than once"),
    ],
)
@pytest.mark.parametrize("path", ["/api/collectors/history", "/api/collectors/batches"])
async def test_bad_input_names_the_parameter(client, db, path, query, named):
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM job_batches")
        before = cur.fetchone()
    resp = await client.get(f"{path}?{query}")
    assert resp.status == 400
    assert named in (await resp.json())["error"]
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM job_batches")
        assert cur.fetchone() == before


async def test_concurrent_readers_and_writers(client):
    """Paging while batches are triggered concurrently still sees each row once."""
    await asyncio.gather(*(trigger(client, "demo", "ninja") for _ in range(10)))
    writers = asyncio.gather(*(trigger(client, "threatlocker") for _ in range(10)))
    seen, _ = await page_through(client, "limit=3&collectors=demo,ninja")
    await writers
    assert len(seen) == len(set(seen)) == 20
