"""The bodies PostgreSQL builds (server/runs/body_sql.py, what live push sends and the batch and
job GETs answer) are the shapes of server/runs/representation.py, on random rows: every status,
nulls, long and unicode texts, timestamps with and without fractions written in any time zone,
durations that round half to even, a batch with no jobs. Written with the triggers off, as a
restore would, so that no trigger tidies a row into something easier to format."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

from collectors.contract import JOB_STATUSES
from server.keys import POOL
from server.runs import body_sql
from server.runs import store as runs
from server.runs.live import BATCHES, snapshot_from
from tests.support import run_bodies as oracle
from tests.support.runs import get_json, set_job, trigger

BATCHES_WRITTEN = 40
# Characters JSON escapes one way or another, and some it leaves alone: quotes, backslashes,
# controls, non-ASCII in each plane, the line separators JavaScript once choked on.
TRICKY = ['"', "\\", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "é", "漢", "😀", "\u2028", "\u2029", "\ufeff", "</"]
OFFSETS = ["+00:00", "Z", "+05:30", "-03:30", "+13:45", "-11:00", "+01:00"]
# Session time zones of the reading connection: the bodies are UTC whatever they are.
SESSION_ZONES = ["UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham"]


def _text(rng: random.Random, *, nullable: bool = True) -> str | None:
    kind = rng.randrange(6)
    if kind == 0 and nullable:
        return None
    if kind == 1:
        return ""
    if kind == 2:  # long: a message at its cap and beyond
        return "".join(rng.choice([*TRICKY, "a", "b", " "]) for _ in range(rng.randrange(1000, 6000)))
    return "".join(rng.choice(TRICKY + list("abc XYZ.:0")) for _ in range(rng.randrange(1, 40)))


def _timestamp(rng: random.Random) -> str:
    """A timestamp as text with an offset: whole seconds, half a second, or any microsecond."""
    base = dt.datetime(1990, 1, 1) + dt.timedelta(seconds=rng.randrange(0, 60 * 365 * 86400))
    fraction = rng.choice([0, 500000, rng.randrange(1, 1000000), 999999])
    stamp = base.replace(microsecond=fraction).isoformat(sep=" ", timespec="microseconds")
    return stamp + rng.choice(OFFSETS)


def _ended(rng: random.Random, started: str) -> str | None:
    """An end: none, a random time (before the start, too), or the start plus whole seconds
    and exactly half a second (rounds to even)."""
    kind = rng.randrange(4)
    if kind == 0:
        return None
    if kind == 1:
        return _timestamp(rng)
    return f"{started}" if kind == 2 else f"{started}|{rng.randrange(0, 100000)}.5"


def _stamp_sql(value: str | None) -> tuple[str, list[Any]]:
    if value is None:
        return "NULL", []
    if "|" in value:
        start, seconds = value.split("|")
        return "%s::timestamptz + make_interval(secs => %s)", [start, float(seconds)]
    return "%s::timestamptz", [value]


def _insert(cur: Any, table: str, row: dict[str, Any]) -> None:
    names, values, params = [], [], []
    for name, value in row.items():
        names.append(name)
        if name.endswith(("_at", "_for", "completion")):
            sql, extra = _stamp_sql(value)
            values.append(sql)
            params.extend(extra)
        else:
            values.append("%s")
            params.append(value)
    cur.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(values)})", params)


def _write_batches(db: Any, rng: random.Random) -> dict[str, list[str]]:
    written: dict[str, list[str]] = {}
    with db.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # the triggers off, as in a restore
        try:
            for n in range(BATCHES_WRITTEN):
                batch_id = f"bc_{rng.randrange(10**8):08d}"
                started = _timestamp(rng)
                scheduled = rng.random() < 0.4
                batch = {
                    "batch_id": batch_id,
                    "status": JOB_STATUSES[n % len(JOB_STATUSES)],
                    "priority": rng.choice(["high", "normal", "low"]),
                    "progress_percent": rng.choice([None, 0, 37, 100]),
                    "message": _text(rng),
                    "error": _text(rng),
                    "estimated_completion": rng.choice([None, _timestamp(rng)]),
                    "started_at": started,
                    "updated_at": _timestamp(rng),
                    "ended_at": _ended(rng, started),
                    "requested_by": _text(rng),
                    "rerun_of": rng.choice([None, f"bc_{rng.randrange(10**8):08d}"]),
                    "schedule_id": f"sch_{rng.randrange(16**16):016x}" if scheduled else None,
                    "schedule_name": _text(rng, nullable=False) if scheduled else None,
                    "scheduled_for": rng.choice([None, _timestamp(rng)]) if scheduled else None,
                }
                _insert(cur, "job_batches", batch)
                jobs = []
                for position in range(rng.choice([0, 1, 1, 2, 3, 5])):
                    job_id = f"{rng.choice(['de', 'ni', 'th', 'x9'])}_{rng.randrange(10**8):08d}"
                    job_started = _timestamp(rng)
                    _insert(
                        cur,
                        "job_runs",
                        {
                            "job_id": job_id,
                            "batch_id": batch_id,
                            "collector": rng.choice(["demo", "ninja", "threatlocker", "süd-collector"]),
                            "job_name": _text(rng, nullable=False),
                            "position": rng.choice([position, 0]),  # ties: ordered by job id then
                            "status": rng.choice(JOB_STATUSES),
                            "priority": "normal",
                            "progress_percent": rng.choice([None, 0, 1, 50, 99, 100]),
                            "message": _text(rng),
                            "error": _text(rng),
                            "started_at": job_started,
                            "updated_at": _timestamp(rng),
                            "ended_at": _ended(rng, job_started),
                            "attempt": rng.randrange(1, 6),
                            "max_attempts": rng.randrange(1, 102),
                            "rerun_of": rng.choice([None, f"ni_{rng.randrange(10**8):08d}"]),
                        },
                    )
                    jobs.append(job_id)
                written[batch_id] = jobs
        finally:
            cur.execute("SET session_replication_role = DEFAULT")
    return written


def _read_in_zone(db: Any, zone: str, **target: str) -> list[tuple[Any, ...]]:
    with db.cursor() as cur:
        cur.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
        try:
            cur.execute(*body_sql.bodies_statement(**target))
            return list(cur.fetchall())
        finally:
            cur.execute("RESET TimeZone")


async def test_postgresql_builds_the_bodies_python_shapes_on_random_rows(client, db):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    written = _write_batches(db, rng)
    pool = client.app[POOL]
    where = f"(random seed {seed})"
    for batch_id, job_ids in written.items():
        snapshot = snapshot_from(await body_sql.read_bodies(pool, batch_id=batch_id))
        assert snapshot is not None
        found = await runs.batch_rows(pool, batch_id=batch_id)
        assert found is not None
        assert json.loads(snapshot.batch.data) == oracle.batch_json(*found), f"batch {batch_id} {where}"
        batch = found[0]
        assert (snapshot.batch_id, snapshot.seq, snapshot.batch.status) == (batch_id, batch["seq"], batch["status"])
        assert list(snapshot.jobs) == [job["job_id"] for job in found[1]], f"jobs in position order {where}"
        for job_id in job_ids:
            event = snapshot.jobs[job_id]
            job = await oracle.fetch_job(pool, job_id)
            assert job is not None
            assert json.loads(event.data) == oracle.job_json(job), f"job {job_id} {where}"
            assert (event.status, event.collector, event.seq) == (job["status"], job["collector"], job["batch_seq"])
        for data in [snapshot.batch.data, *(e.data for e in snapshot.jobs.values())]:
            assert b"\n" not in data and b"\r" not in data, "one line, as an SSE data: field needs"
        for zone in SESSION_ZONES:  # the reading session's time zone changes nothing
            rows = _read_in_zone(db, zone, batch_id=batch_id)
            assert snapshot_from(rows) is not None
            assert rows[0][0][0][3].encode() == snapshot.batch.data, f"batch {batch_id} read in {zone} {where}"
        if job_ids:  # the statement by job id reads the same
            by_job = await body_sql.read_bodies(pool, job_id=job_ids[-1])
            assert by_job[0][0][0][3].encode() == snapshot.batch.data


async def test_the_gets_answer_the_bodies_postgresql_builds(client, db):
    rng = random.Random(7)
    written = _write_batches(db, rng)
    pool = client.app[POOL]
    for batch_id, job_ids in list(written.items())[:8]:
        found = await runs.batch_rows(pool, batch_id=batch_id)
        assert found is not None
        response = await client.get(f"/api/collectors/runs/batch/{batch_id}")
        snapshot = await BATCHES.batch_snapshot(pool, batch_id=batch_id)
        assert snapshot is not None
        assert await response.read() == snapshot.batch.data, "the GET sends the bytes live push sends"
        assert json.loads(snapshot.batch.data) == oracle.batch_json(*found)
        for job_id in job_ids:
            job = await oracle.fetch_job(pool, job_id)
            assert job is not None
            assert await get_json(client, f"/api/collectors/runs/job/{job_id}") == oracle.job_json(job)


async def test_a_half_second_rounds_to_even_as_python_rounds_it(client, db):
    """Python's ``round`` (representation.duration_seconds) rounds half to even: 2.5 s is 2,
    3.5 s is 4. SQL's ``round`` of a numeric would say 3 and 4."""
    pool = client.app[POOL]
    with db.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        for n, seconds in enumerate((2.5, 3.5, 0.5, 1.499999)):
            _insert(
                cur,
                "job_batches",
                {
                    "batch_id": f"bc_9000000{n}",
                    "status": "completed",
                    "started_at": "2026-01-01 00:00:00+00",
                    "ended_at": f"2026-01-01 00:00:00+00|{seconds}",
                },
            )
        cur.execute("SET session_replication_role = DEFAULT")
    figures = []
    for n in range(4):
        snapshot = snapshot_from(await body_sql.read_bodies(pool, batch_id=f"bc_9000000{n}"))
        assert snapshot is not None
        found = await runs.batch_rows(pool, batch_id=f"bc_9000000{n}")
        assert found is not None
        figures.append(json.loads(snapshot.batch.data)["duration_seconds"])
        assert figures[-1] == oracle.batch_json(*found)["duration_seconds"]
    assert figures == [2, 4, 0, 1]


async def test_the_answers_of_changes_and_latest_are_the_get_bodies(client, db):
    """One copy of the shapes: what cancel and progress answer, and ``/runs/latest`` lists,
    is the GET's body, byte for byte (PostgreSQL's text, body_sql.py)."""
    created = await trigger(client, "demo", "ninja")
    batch_id, demo, ninja = created["batch_id"], created["collectors"][0]["job_id"], created["collectors"][1]["job_id"]
    await set_job(db, demo, status="running", progress_percent=5, message='héllo "quoted"')
    answer = await client.post(
        f"/api/collectors/runs/job/{demo}/progress", json={"status": "running", "progress_percent": 60}
    )
    assert answer.status == 200
    assert await answer.read() == await (await client.get(f"/api/collectors/runs/job/{demo}")).read()
    latest = await get_json(client, "/api/collectors/runs/latest?collectors=demo,ninja")
    # (the module's other tests wrote random runs of these collectors too: which run is latest
    # is tests/test_api_runs.py's to check, its body is this test's)
    assert [run["collector"] for run in latest["latest_runs"]] == ["demo", "ninja"]
    for run in latest["latest_runs"]:
        assert run == await get_json(client, f"/api/collectors/runs/job/{run['job_id']}")
    answer = await client.post(f"/api/collectors/runs/job/{ninja}/cancel")
    assert answer.status == 200
    assert await answer.read() == await (await client.get(f"/api/collectors/runs/job/{ninja}")).read()
    answer = await client.post(f"/api/collectors/runs/batch/{batch_id}/cancel")
    assert answer.status == 200
    assert await answer.read() == await (await client.get(f"/api/collectors/runs/batch/{batch_id}")).read()
    assert (await get_json(client, f"/api/collectors/runs/batch/{batch_id}"))["status"] == "cancelled"
