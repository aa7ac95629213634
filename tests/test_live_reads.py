"""Where live push re-reads a batch: on the process's LISTEN connection (no pool checkout, the
larger part of the fixed cost per state, docs/LIVE_PUSH.md), the same statement as the GET's,
falling back to the pool when that connection cannot answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from server.keys import POOL
from server.realtime.keys import HUB
from server.realtime.listen_connection import APPLICATION_NAME
from server.realtime.listener import Listener
from server.runs import store as runs
from server.runs.live import BATCHES
from tests.support import run_bodies as oracle
from tests.support.conditions import eventually
from tests.support.runs import get_json, set_job, trigger


class _Unavailable:
    """A reader whose connection is down: the source must read from the pool."""

    calls = 0

    async def read(self, sql: str, params: Sequence[Any]) -> None:
        self.calls += 1
        return None


async def test_a_followed_batch_is_re_read_on_the_listen_connection_found_by_its_name(client, db):
    created = await trigger(client, "demo", "ninja")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    hub = client.app[HUB]
    ws = await client.ws_connect("/api/ws")
    await ws.send_json({"op": "subscribe", "batch_id": batch_id})
    reads = hub.listener.reads
    for percent in (10, 20, 30):
        await set_job(db, job_id, status="running", progress_percent=percent)
        while True:
            message = json.loads((await ws.receive(timeout=15)).data)
            if message.get("type") == "batch" and message["data"]["collectors"][0]["progress_percent"] == percent:
                break
        assert message["data"] == await get_json(client, f"/api/collectors/runs/batch/{batch_id}")
    assert hub.listener.reads >= reads + 3, "each new state is read on the LISTEN connection"
    await ws.close()
    with db.cursor() as cur:  # operators find the LISTEN session by its application_name
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            (APPLICATION_NAME,),
        )
        assert [row[0] for row in cur.fetchall()] == [hub.listener.backend_pid]


async def _followed_to(ws: Any, percent: int) -> dict[str, Any]:
    while True:
        message = json.loads((await ws.receive(timeout=15)).data)
        if message.get("type") == "batch" and message["data"]["collectors"][0]["progress_percent"] == percent:
            return dict(message["data"])


def _listener_query(db: Any) -> tuple[int, str]:
    with db.cursor() as cur:
        cur.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            (APPLICATION_NAME,),
        )
        rows = cur.fetchall()
    assert len(rows) == 1
    return rows[0]


async def test_the_re_read_is_prepared_once_on_each_listen_session(client, db):
    """PostgreSQL parses and plans the re-read once per session (docs/LIVE_PUSH.md, the fixed
    cost per state): each read is an EXECUTE, and a new session after a reconnect prepares it
    again before its first read."""
    created = await trigger(client, "demo")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    hub = client.app[HUB]
    ws = await client.ws_connect("/api/ws")
    await ws.send_json({"op": "subscribe", "batch_id": batch_id})
    await set_job(db, job_id, status="running", progress_percent=10)
    await _followed_to(ws, 10)
    pid, query = _listener_query(db)
    assert query.startswith("EXECUTE collector_hub_read_"), query
    generation = hub.listener.generation
    with db.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await eventually(lambda: _value(hub.listener.listening and hub.listener.generation > generation), what="relisten")
    await set_job(db, job_id, status="running", progress_percent=20)
    assert await _followed_to(ws, 20) == await get_json(client, f"/api/collectors/runs/batch/{batch_id}")
    await set_job(db, job_id, status="running", progress_percent=30)
    await _followed_to(ws, 30)  # (a GET would leave its fence, SELECT 1, as the session's last query)
    new_pid, query = _listener_query(db)
    assert new_pid != pid and query.startswith("EXECUTE collector_hub_read_"), query
    await ws.close()


async def _value(value: bool) -> bool:
    return value


async def test_the_listen_connection_and_the_pool_read_the_same_snapshot(client, db):
    created = await trigger(client, "demo", "ninja")
    batch_id, job_id = created["batch_id"], created["collectors"][1]["job_id"]
    await set_job(db, job_id, status="failed", error="boom", progress_percent=40)
    hub, pool = client.app[HUB], client.app[POOL]
    unavailable = _Unavailable()
    reads = hub.listener.reads
    on_listener = await BATCHES.batch_snapshot(pool, job_id=job_id, reader=hub.listener)
    from_pool = await BATCHES.batch_snapshot(pool, batch_id=batch_id)
    fallen_back = await BATCHES.batch_snapshot(pool, batch_id=batch_id, reader=unavailable)
    assert hub.listener.reads == reads + 1 and unavailable.calls == 1
    assert from_pool is not None
    for snapshot in (on_listener, fallen_back):
        assert snapshot is not None
        assert (snapshot.batch_id, snapshot.seq, snapshot.batch.data) == (batch_id, from_pool.seq, from_pool.batch.data)
        assert {k: e.data for k, e in snapshot.jobs.items()} == {k: e.data for k, e in from_pool.jobs.items()}
    assert json.loads(from_pool.batch.data) == await get_json(client, f"/api/collectors/runs/batch/{batch_id}")
    assert await BATCHES.batch_snapshot(pool, batch_id="bc_00000000", reader=hub.listener) is None


class _Only(dict):
    """A row that refuses to be asked for a column outside ``columns`` (``get`` too)."""

    def __init__(self, row: dict[str, Any], columns: Sequence[str]) -> None:
        super().__init__({name: row[name] for name in columns})

    def __getitem__(self, name: str) -> Any:
        assert name in self, f"a shape reads {name!r}, which live push does not select"
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name]


async def test_live_push_selects_every_column_the_bodies_show(client, db):
    created = await trigger(client, "demo", "ninja")
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    await set_job(db, job_id, status="failed", error="boom", progress_percent=40)
    pool = client.app[POOL]
    found = await runs.batch_rows(pool, batch_id=batch_id)
    assert found is not None
    batch, jobs = found
    body, job_bodies = oracle.batch_and_job_json(
        _Only(batch, oracle.BATCH_COLUMNS), [_Only(job, oracle.JOB_COLUMNS) for job in jobs]
    )
    assert body == oracle.batch_json(batch, jobs) == await get_json(client, f"/api/collectors/runs/batch/{batch_id}")
    for job, job_body in zip(jobs, job_bodies, strict=True):
        assert job_body == await get_json(client, f"/api/collectors/runs/job/{job['job_id']}")


async def test_a_read_still_out_when_the_listener_stops_is_answered(database_url):
    listener = Listener(database_url, lambda payload: None, _nothing)
    await listener.start()
    assert listener.listening
    answers: list[Any] = []
    assert listener.read_rows("SELECT pg_sleep(30)", (), lambda rows, error: answers.append(rows))
    await listener.stop()
    assert answers == [None], "the reader falls back to the pool instead of waiting forever"


async def test_a_statement_the_socket_does_not_take_whole_is_sent_and_answered(database_url):
    """After sending a statement the LISTEN connection waits for its answer in the reader
    callback, and only watches the socket for room when the statement did not all go out
    (docs/LIVE_PUSH.md, the fixed cost per state): one of 1 MB, more than a socket takes at
    once, must still reach PostgreSQL whole and be answered (not break the connection when the
    watchdog finds it unanswered)."""
    listener = Listener(database_url, lambda payload: None, _nothing)
    await listener.start()
    try:
        text = "x" * (1 << 20)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        assert listener.read_rows(f"SELECT length('{text}')", (), lambda rows, error: answer.set_result(rows))
        assert await answer == [(len(text),)]
        assert listener.listening and listener.generation == 1
    finally:
        await listener.stop()


async def _nothing() -> None:
    return None
