"""Exactly once across nodes: three real ``collector-hub serve`` processes on one database race
for the same due times, and each due time starts one batch.

No test waits for a real minute: the schedules' next due time is set to the minute that has
just begun (in the database's clock, which every process shares here), so it is due at once
and inside the misfire grace for every process.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import psycopg2.extras

from server.api.timestamps import format_timestamp
from tests.support.conditions import eventually
from tests.support.database import truncate
from tests.support.processes import ServeProcess

SCHEDULES = 30


def serve_env(database_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "COLLECTOR_HUB_DATABASE_URL": database_url,
        "COLLECTOR_HUB_DATA_DIR": str(data_dir),
        "COLLECTOR_HUB_RUN_COLLECTORS": "0",
        "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "0",
        "COLLECTOR_HUB_SHUTDOWN_TIMEOUT": "2",
        "COLLECTOR_HUB_SCHEDULE_POLL_INTERVAL": "0.1",
    }


def query(db: psycopg2.extensions.connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, args)
        return list(cur.fetchall()) if cur.description else []


def rewind_to_this_minute(db: psycopg2.extensions.connection) -> Any:
    """Make every schedule due at the minute that has just begun; returns that minute."""
    [row] = query(db, "UPDATE schedules SET next_due_at = date_trunc('minute', now()) RETURNING next_due_at")[:1]
    return row["next_due_at"]


async def test_three_serve_processes_fire_each_due_time_exactly_once(database_url, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    query(db, truncate("schedules", "job_batches"))
    servers = [ServeProcess(serve_env(database_url, tmp_path), tmp_path / f"serve{i}.log") for i in range(3)]
    try:
        await asyncio.gather(*(server.start() for server in servers))
        async with aiohttp.ClientSession() as session:
            for i in range(SCHEDULES):
                body = {"name": f"race-{i:02d}", "collectors": ["demo"], "cron": "* * * * *", "overlap": "queue"}
                async with session.post(servers[i % 3].url + "/api/schedules", json=body) as resp:
                    assert resp.status == 201, await resp.text()
            minute = rewind_to_this_minute(db)

            async def all_fired() -> bool:
                rows = query(
                    db, "SELECT count(DISTINCT schedule_id) AS n FROM schedule_fires WHERE due_at = %s", minute
                )
                return rows[0]["n"] == SCHEDULES

            await eventually(all_fired, timeout=30, what="every schedule to fire for the rewound minute")

            # A second race for the same, already recorded, due time: the unique key holds.
            rewind_to_this_minute(db)

            async def all_moved_on() -> bool:
                rows = query(db, "SELECT count(*) AS n FROM schedules WHERE next_due_at <= now()")
                return rows[0]["n"] == 0

            await eventually(all_moved_on, timeout=30, what="every node to deal with the rewound schedules")

            per_due_time = Counter(
                (r["schedule_id"], r["scheduled_for"])
                for r in query(db, "SELECT schedule_id, scheduled_for FROM job_batches WHERE schedule_id IS NOT NULL")
            )
            assert per_due_time and set(per_due_time.values()) == {1}, per_due_time.most_common(3)
            fired = query(db, "SELECT schedule_id, due_at, node FROM schedule_fires WHERE outcome = 'fired'")
            assert len(fired) == sum(per_due_time.values())
            assert len([f for f in fired if f["due_at"] == minute]) == SCHEDULES

            # Any node shows the batch with its schedule and due time.
            batch = query(db, "SELECT batch_id, schedule_id FROM job_batches WHERE scheduled_for = %s LIMIT 1", minute)[
                0
            ]
            async with session.get(f"{servers[2].url}/api/collectors/runs/batch/{batch['batch_id']}") as resp:
                shown = await resp.json()
            assert shown["schedule"]["schedule_id"] == batch["schedule_id"]
            assert shown["schedule"]["due_at"] == format_timestamp(minute)
    finally:
        codes = await asyncio.gather(*(server.stop() for server in servers if server.process is not None))
    assert codes == [0, 0, 0]
