"""Several server processes on one database: each has its own LISTEN connection and delivers
every event to its own clients (issue 3, "Several processes")."""

from __future__ import annotations

import json
import signal

import aiohttp

from server.realtime.listen_connection import APPLICATION_NAME
from tests.support.conditions import eventually
from tests.support.processes import ServeProcess
from tests.support.runs import set_job
from tests.support.sse_stream import SseStream


def serve_env(database_url: str) -> dict[str, str]:
    return {
        "COLLECTOR_HUB_DATABASE_URL": database_url,
        "COLLECTOR_HUB_RUN_COLLECTORS": "0",
        "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "0",
        "COLLECTOR_HUB_SHUTDOWN_TIMEOUT": "2",
    }


def listen_connections(db) -> int:
    with db.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            (APPLICATION_NAME,),
        )
        return int(cur.fetchone()[0])


async def _value(value):
    return value


async def test_two_server_processes_each_deliver_the_same_run(database_url, db, tmp_path):
    servers = [ServeProcess(serve_env(database_url), tmp_path / f"serve{i}.log") for i in range(2)]
    try:
        for server in servers:
            await server.start()
        await eventually(lambda: _value(listen_connections(db) == 2), what="one LISTEN connection per process")
        async with aiohttp.ClientSession() as session:
            async with session.post(servers[0].url + "/api/collectors/run", json={"collectors": ["demo"]}) as resp:
                created = await resp.json()
            batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
            sse = SseStream(await session.get(f"{servers[0].url}/api/collectors/runs/batch/{batch_id}/events"))
            ws = await session.ws_connect(servers[1].url + "/api/ws")
            await ws.send_json({"op": "subscribe", "batch_id": batch_id})
            await sse.event()
            for percent in (10, 50, 90):
                await set_job(db, job_id, status="running", progress_percent=percent)
            await set_job(db, job_id, status="completed")
            over_sse = json.loads((await sse.events_until("completed"))[-1]["data"])
            over_ws = None
            while over_ws is None or over_ws["status"] != "completed":
                message = json.loads((await ws.receive(timeout=15)).data)
                if message["type"] == "batch":
                    over_ws = message["data"]
            assert over_sse == over_ws
            await ws.close()
            sse.close()
    finally:
        for server in servers:
            if server.process is not None and server.process.returncode is None:
                await server.stop()


async def test_serve_workers_runs_n_processes_on_one_port(database_url, db, tmp_path):
    server = ServeProcess(serve_env(database_url), tmp_path / "serve.log", "--workers", "2")
    try:
        await server.start()
        await eventually(lambda: _value(listen_connections(db) == 2), what="each worker's own LISTEN connection")
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/readyz") as resp:
                assert resp.status == 200
            async with session.post(server.url + "/api/collectors/run", json={"collectors": ["demo"]}) as resp:
                created = await resp.json()
            # Many connections: whichever worker accepts each, every one sees the run live.
            streams = [
                SseStream(await session.get(f"{server.url}/api/collectors/runs/batch/{created['batch_id']}/events"))
                for _ in range(8)
            ]
            for sse in streams:
                await sse.event()
            await set_job(db, created["collectors"][0]["job_id"], status="completed")
            for sse in streams:
                await sse.events_until("completed")
                assert await sse.event() is None  # the stream ended after the terminal state
                sse.close()
    finally:
        assert server.process is not None
        code = await server.stop(signal.SIGTERM)
    assert code == 0, server.log()
    assert listen_connections(db) == 0
