"""Recording a collector's pid is the runner's bookkeeping, not news: it used to bump the job's
seq and updated_at, rewrite its batch and NOTIFY, so every live client got the same
"Starting collector" state twice (seq 232 and 234 in the report). sql/008."""

from __future__ import annotations

import asyncio
import itertools
import json
import select
import sys
from typing import Any

import psycopg2
import psycopg2.extensions

from server.app import create_app
from tests.support.collectors_file import write_collectors_file
from tests.support.database import fetch
from tests.support.runs import new_batch, trigger
from tests.support.settings import replace_settings

STAMPS = "SELECT j.seq, j.updated_at, b.seq, b.updated_at FROM job_runs j JOIN job_batches b USING (batch_id)"


def notifications(conn: Any, wait: float, until: str | None = None) -> list[str]:
    """What arrives on ``conn`` (select, not sleep): everything within ``wait`` seconds of the
    last arrival, or, given ``until``, up to the first payload that mentions it."""
    received: list[str] = []
    while select.select([conn], [], [], wait) != ([], [], []):
        conn.poll()
        received += [n.payload for n in conn.notifies]
        conn.notifies.clear()
        if until is not None and any(until in payload for payload in received):
            break
    return received


def test_recording_a_pid_changes_no_stamp_and_notifies_nobody(db: Any, database_url: str) -> None:
    _batch, (job, _) = new_batch(db)
    with db.cursor() as cur:
        cur.execute(
            "UPDATE job_runs SET status = 'running', runner_id = 'r1', message = 'Starting collector'"
            " WHERE job_id = %s",
            (job,),
        )
    before = fetch(db, STAMPS + " WHERE job_id = %s", job)
    listener = psycopg2.connect(database_url)
    listener.autocommit = True
    try:
        with listener.cursor() as cur:
            cur.execute("LISTEN collector_hub")
        with db.cursor() as cur:
            cur.execute("UPDATE job_runs SET pid = 4242 WHERE job_id = %s", (job,))
        assert fetch(db, "SELECT pid FROM job_runs WHERE job_id = %s", job) == (4242,)
        assert fetch(db, STAMPS + " WHERE job_id = %s", job) == before
        assert notifications(listener, 0.5) == []
        # A change clients do see still bumps both rows and notifies, pid or not.
        with db.cursor() as cur:
            cur.execute("UPDATE job_runs SET pid = 4343, message = 'Page 1' WHERE job_id = %s", (job,))
        after = fetch(db, STAMPS + " WHERE job_id = %s", job)
        assert after[0] > before[0] and after[2] > before[2]
        assert any(job in payload for payload in notifications(listener, 10, until=job))
    finally:
        listener.close()


async def test_a_websocket_follower_sees_each_job_state_once(aiohttp_client: Any, settings: Any, tmp_path: Any) -> None:
    """The symptom end to end: a real runner starts a real collector (claim, then pid), and a
    WebSocket follower of the job gets no two consecutive states that differ only in seq."""
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "demo": {
                "command": [sys.executable, "-m", "collectors.demo"],
                "env": {"DEMO_PAGES": "2", "DEMO_PAGE_SECONDS": "0.2"},
            }
        },
    )
    app = create_app(
        replace_settings(settings, run_collectors=True, runner_poll_interval=0.1, collectors_file=collectors)
    )
    client = await aiohttp_client(app)
    job_id = (await trigger(client, "demo"))["collectors"][0]["job_id"]
    states: list[dict[str, Any]] = []
    async with client.ws_connect("/api/ws") as ws:
        await ws.send_json({"op": "subscribe", "job_id": job_id})
        async with asyncio.timeout(60):
            async for message in ws:
                body = json.loads(message.data)
                if body.get("type") == "job":
                    states.append(body["data"])
                    if body["data"]["status"] in ("completed", "failed", "cancelled"):
                        break
    assert states[-1]["status"] == "completed", states
    visible = [{k: v for k, v in s.items() if k != "updated_at"} for s in states]
    repeats = [(a["message"], a["status"]) for a, b in itertools.pairwise(visible) if a == b]
    assert not repeats, f"the same state was sent twice: {repeats}"
    assert [s["message"] for s in states].count("Starting collector") <= 1
