"""Where live push re-reads a batch: on the process's LISTEN connection (no pool checkout, the
larger part of the fixed cost per state, docs/LIVE_PUSH.md), the same statement as the GET's,
falling back to the pool when that connection cannot answer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from server.keys import POOL
from server.realtime.keys import HUB
from server.runs.live import BATCHES
from tests.support.runs import get_json, set_job, trigger


class _Unavailable:
    """A reader whose connection is down: the source must read from the pool."""

    calls = 0

    async def read(self, sql: str, params: Sequence[Any]) -> None:
        self.calls += 1
        return None


async def test_a_followed_batch_is_re_read_on_the_listen_connection_which_still_shows_its_listen(client, db):
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
    with db.cursor() as cur:  # operators find the LISTEN session by its last statement
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            " AND pid = %s",
            (hub.listener.backend_pid,),
        )
        assert cur.fetchone()[0] == 1


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
