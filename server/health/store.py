"""The SQL side of collector health: the facts each collector's jobs left, and a change of
state with its alerts, once.

The facts (``collector_health``) are kept by a trigger on ``job_runs`` (sql/011). A change of
state is one transaction: the row locked, the state checked again against the facts under that
lock, moved, and one outbox row written per receiver of the event. Every node evaluates; the
lock and the re-check make the second node find the state already moved, so each change is
alerted exactly once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import aiopg
import psycopg2.extras

from server.db import database

Row = dict[str, Any]


async def ensure_rows(pool: aiopg.Pool, collectors: Sequence[str]) -> None:
    """A row for every configured collector, so that staleness counts from its first sight."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "INSERT INTO collector_health (collector) SELECT unnest(%s::text[]) ON CONFLICT (collector) DO NOTHING",
            (list(collectors),),
        )


@database.read_only
async def read_facts(pool: aiopg.Pool, collectors: Sequence[str]) -> tuple[dt.datetime, dict[str, Row]]:
    """The database's clock, and the row of each of ``collectors`` that has one."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT *, clock_timestamp() AS now FROM collector_health WHERE collector = ANY(%s)", (list(collectors),)
        )
        rows = await cur.fetchall()
        if not rows:
            await cur.execute("SELECT clock_timestamp() AS now")
            return (await cur.fetchone())["now"], {}
    return rows[0]["now"], {row["collector"]: row for row in rows}


async def change_state(
    pool: aiopg.Pool,
    collector: str,
    decide: Callable[[Row, dt.datetime], str],
    event_data: Callable[[Row, str, dt.datetime], dict[str, Any]],
    event_of: Callable[[str], str],
) -> tuple[str, str, int] | None:
    """Move ``collector`` to the state ``decide`` gives for its facts, read under the row's
    lock; write a delivery of the event to each receiver that wants it. Returns (old state,
    new state, deliveries written), or None when the state is already right (another node
    moved it, or the facts changed since they were read)."""
    async with database.transaction(pool) as cur:
        await cur.execute(
            "SELECT *, clock_timestamp() AS now FROM collector_health WHERE collector = %s FOR UPDATE", (collector,)
        )
        row: Row | None = await cur.fetchone()
        if row is None:
            return None
        new_state = decide(row, row["now"])
        old_state = row["state"]
        if new_state == old_state:
            return None
        await cur.execute(
            "UPDATE collector_health SET state = %s, state_since = %s WHERE collector = %s",
            (new_state, row["now"], collector),
        )
        event = event_of(new_state)
        moved = {**row, "state": new_state, "state_since": row["now"]}
        await cur.execute(
            "INSERT INTO webhook_deliveries (webhook_id, event, collector, data)"
            " SELECT w.webhook_id, %(event)s, %(collector)s, %(data)s FROM webhooks w"
            " WHERE w.enabled AND %(event)s = ANY (w.events)"
            "   AND (w.collectors IS NULL OR %(collector)s = ANY (w.collectors))",
            {
                "event": event,
                "collector": collector,
                "data": psycopg2.extras.Json(event_data(moved, old_state, row["now"])),
            },
        )
        written = cur.rowcount
    return old_state, new_state, written
