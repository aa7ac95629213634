"""Exactly once across nodes: two real ``collector-hub serve`` processes on one database both
evaluate collector health after every job that ends; each change of state is alerted once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import aiohttp

from tests.support.conditions import eventually
from tests.support.database import execute, fetch_rows, truncate
from tests.support.processes import ServeProcess
from tests.support.webhook_receivers import start_receiver

FLIPS = 4


def serve_env(database_url: str, data_dir: Path, collectors_file: Path) -> dict[str, str]:
    return {
        "COLLECTOR_HUB_DATABASE_URL": database_url,
        "COLLECTOR_HUB_DATA_DIR": str(data_dir),
        "COLLECTOR_HUB_COLLECTORS_FILE": str(collectors_file),
        "COLLECTOR_HUB_RUN_COLLECTORS": "0",
        "COLLECTOR_HUB_RUN_SCHEDULES": "0",
        "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "0",
        "COLLECTOR_HUB_SHUTDOWN_TIMEOUT": "2",
        "COLLECTOR_HUB_HEALTH_INTERVAL": "0.1",
        "COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE": "1",
        "COLLECTOR_HUB_WEBHOOK_POLL_INTERVAL": "0.05",
    }


async def end_job(session: aiohttp.ClientSession, url: str, status: str) -> None:
    async with session.post(url + "/api/collectors/run", json={"collectors": ["flaky"]}) as resp:
        assert resp.status == 201, await resp.text()
        job_id = (await resp.json())["collectors"][0]["job_id"]
    report = {"status": status, **({"error": "boom"} if status == "failed" else {})}
    async with session.post(f"{url}/api/collectors/runs/job/{job_id}/progress", json=report) as resp:
        assert resp.status == 200, await resp.text()


async def test_two_serve_processes_alert_each_change_of_health_exactly_once(
    database_url, db, tmp_path, aiohttp_server
) -> None:  # type: ignore[no-untyped-def]
    await execute(db, truncate("collector_health", "webhooks", "job_batches"))
    collectors = tmp_path / "collectors.toml"
    collectors.write_text('[collectors.flaky]\ncommand = ["true"]\n')
    receiver = await start_receiver(aiohttp_server)
    env = serve_env(database_url, tmp_path, collectors)
    servers = [ServeProcess(env, tmp_path / f"serve{i}.log") for i in range(2)]
    try:
        await asyncio.gather(*(server.start() for server in servers))
        async with aiohttp.ClientSession() as session:
            hook = {"url": receiver.url, "events": ["collector.failing", "collector.recovered"]}
            async with session.post(servers[0].url + "/api/webhooks", json=hook) as resp:
                assert resp.status == 201, await resp.text()
            for flip in range(FLIPS):
                for status, event in (("failed", "collector.failing"), ("completed", "collector.recovered")):
                    await end_job(session, servers[flip % 2].url, status)

                    async def alerted(event: str = event, flip: int = flip) -> bool:
                        got = Counter(json.loads(r.body)["type"] for r in receiver.received)
                        return got[event] == flip + 1

                    await eventually(alerted, what=f"{event} number {flip + 1}")
        rows = await fetch_rows(db, "SELECT event, count(*) AS n FROM webhook_deliveries GROUP BY event")
        assert {r["event"]: r["n"] for r in rows} == {"collector.failing": FLIPS, "collector.recovered": FLIPS}
        assert len(receiver.received) == len(set(receiver.ids())) == 2 * FLIPS
        # Each change was made (and logged) by one node; the other found it made.
        assert sum(server.log().count("collector flaky: ") for server in servers) == 2 * FLIPS
    finally:
        for server in servers:
            if server.process is not None:
                await server.stop()
