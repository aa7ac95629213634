"""Schedules in PostgreSQL: the definitions, and firing a due time exactly once.

Firing (``fire_next_due``) is one transaction per schedule: claim one due row with
``FOR UPDATE SKIP LOCKED`` (another node skips it rather than wait), record the due time in
``schedule_fires`` (its primary key refuses a second record of the same due time), start the
batch or record why not, and move ``next_due_at`` past ``now``. Writers of a definition (PATCH,
DELETE, run now) lock the same row, so they wait for a firing in progress or make it skip.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiopg
import psycopg2.errors

from collectors.registry import CollectorSpec
from server.audit import store as audit_store
from server.audit.actor import schedule_actor
from server.audit.entry import AuditEntry, by
from server.db import database
from server.errors import ConflictError, NotFoundError
from server.runs import store as runs
from server.schedules.cron import due_between, next_fire_time
from server.schedules.definition import TIMING_FIELDS, ScheduleDefinition

log = logging.getLogger(__name__)

Row = dict[str, Any]
MAX_SCHEDULES = 1000
FIRE_RECORDS_KEPT = dt.timedelta(days=30)
# Any constant; serialises nodes upserting the declared schedules at the same start.
DECLARED_LOCK_ID = 0x73636864  # "schd"

_WITH_LAST = """
    SELECT s.*,
           lb.batch_id AS last_batch_id, lb.status AS last_batch_status, lb.started_at AS last_batch_started_at,
           lb.ended_at AS last_batch_ended_at, lb.scheduled_for AS last_batch_due_at,
           lf.due_at AS last_fire_due_at, lf.outcome AS last_fire_outcome, lf.batch_id AS last_fire_batch_id,
           lf.detail AS last_fire_detail, lf.recorded_at AS last_fire_recorded_at
      FROM schedules s
      LEFT JOIN LATERAL (
           SELECT batch_id, status, started_at, ended_at, scheduled_for FROM job_batches b
            WHERE b.schedule_id = s.schedule_id ORDER BY b.started_at DESC, b.batch_id DESC LIMIT 1
      ) lb ON true
      LEFT JOIN LATERAL (
           SELECT due_at, outcome, batch_id, detail, recorded_at FROM schedule_fires f
            WHERE f.schedule_id = s.schedule_id ORDER BY f.due_at DESC LIMIT 1
      ) lf ON true
"""


@database.read_only
async def list_schedules(pool: aiopg.Pool) -> list[Row]:
    async with database.cursor(pool) as cur:
        await cur.execute(_WITH_LAST + " ORDER BY s.name")
        rows: list[Row] = await cur.fetchall()
    return rows


@database.read_only
async def get_schedule(pool: aiopg.Pool, schedule_id: str) -> Row:
    async with database.cursor(pool) as cur:
        await cur.execute(_WITH_LAST + " WHERE s.schedule_id = %s", (schedule_id,))
        row: Row | None = await cur.fetchone()
    if row is None:
        raise NotFoundError("Schedule not found")
    return row


def _next_due(cron: str, timezone: str, now: dt.datetime) -> dt.datetime:
    return next_fire_time(cron, timezone, now)


async def create_schedule(pool: aiopg.Pool, definition: ScheduleDefinition, now: dt.datetime, audit: AuditEntry) -> str:
    """Store a new API schedule; its first due time is the first after ``now``."""
    d = definition
    try:
        async with database.transaction(pool) as cur:
            await cur.execute("SELECT count(*) AS n FROM schedules")
            if (await cur.fetchone())["n"] >= MAX_SCHEDULES:
                raise ConflictError(f"There are already {MAX_SCHEDULES} schedules, the most this server keeps")
            await cur.execute(
                "INSERT INTO schedules (name, collectors, priority, cron, timezone, enabled, overlap, catch_up,"
                " next_due_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING schedule_id",
                (d.name, list(d.collectors), d.priority, d.cron, d.timezone, d.enabled, d.overlap, d.catch_up,
                 _next_due(d.cron, d.timezone, now)),
            )  # fmt: skip
            schedule_id: str = (await cur.fetchone())["schedule_id"]
            await audit_store.record(cur, audit.about(schedule_id, detail=f"name {d.name}, cron {d.cron}"))
    except psycopg2.errors.UniqueViolation:
        raise ConflictError(f"A schedule named {d.name!r} already exists") from None
    return schedule_id


async def _lock(cur: Any, schedule_id: str) -> Row:
    await cur.execute("SELECT * FROM schedules WHERE schedule_id = %s FOR UPDATE", (schedule_id,))
    row: Row | None = await cur.fetchone()
    if row is None:
        raise NotFoundError("Schedule not found")
    return row


async def update_schedule(
    pool: aiopg.Pool, schedule_id: str, changes: Mapping[str, Any], now: dt.datetime, audit: AuditEntry
) -> None:
    """Apply checked changes. A new cron or time zone, or a resume, takes effect from ``now``:
    the next due time is the first after it (a paused stretch is not caught up). Other
    changes keep the pending due time, which then fires with the new definition."""
    try:
        async with database.transaction(pool) as cur:
            row = await _lock(cur, schedule_id)
            if row["source"] == "file" and set(changes) - {"enabled"}:
                raise ConflictError(
                    "This schedule is declared in the collectors file: change it there (the API may only pause"
                    " and resume it)"
                )
            merged = {**row, **changes}
            resumed = merged["enabled"] and not row["enabled"]
            if resumed or any(merged[f] != row[f] for f in TIMING_FIELDS):
                merged["next_due_at"] = _next_due(merged["cron"], merged["timezone"], now)
            await cur.execute(
                "UPDATE schedules SET name = %s, collectors = %s, priority = %s, cron = %s, timezone = %s,"
                " enabled = %s, overlap = %s, catch_up = %s, next_due_at = %s, updated_at = clock_timestamp()"
                " WHERE schedule_id = %s",
                (merged["name"], list(merged["collectors"]), merged["priority"], merged["cron"], merged["timezone"],
                 merged["enabled"], merged["overlap"], merged["catch_up"], merged["next_due_at"], schedule_id),
            )  # fmt: skip
            await audit_store.record(cur, audit.about(detail="changed " + ", ".join(sorted(changes))))
    except psycopg2.errors.UniqueViolation:
        raise ConflictError(f"A schedule named {changes.get('name')!r} already exists") from None


async def delete_schedule(pool: aiopg.Pool, schedule_id: str, audit: AuditEntry) -> None:
    """Delete an API schedule (waiting for a firing of it in progress). Its batches keep
    saying which schedule started them."""
    async with database.transaction(pool) as cur:
        row = await _lock(cur, schedule_id)
        if row["source"] == "file":
            raise ConflictError("This schedule is declared in the collectors file: remove it there")
        await cur.execute("DELETE FROM schedules WHERE schedule_id = %s", (schedule_id,))
        await audit_store.record(cur, audit.about(detail=f"name {row['name']}"))


async def _active_batch(cur: Any, schedule_id: str) -> Row | None:
    await cur.execute(
        "SELECT batch_id, status FROM job_batches WHERE schedule_id = %s AND NOT collector_hub_is_terminal(status)"
        " ORDER BY started_at DESC LIMIT 1",
        (schedule_id,),
    )
    row: Row | None = await cur.fetchone()
    return row


async def trigger_schedule(
    pool: aiopg.Pool, schedule_id: str, registry: Mapping[str, CollectorSpec], audit: AuditEntry
) -> runs.BatchRows:
    """Run now: a batch recording the schedule (no due time). The overlap policy holds."""
    async with database.transaction(pool) as cur:
        row = await _lock(cur, schedule_id)
        unknown = [c for c in row["collectors"] if c not in registry]
        if unknown:
            raise ConflictError(f"This schedule names collector(s) this server does not know: {', '.join(unknown)}")
        if row["overlap"] == "skip":
            active = await _active_batch(cur, schedule_id)
            if active is not None:
                raise ConflictError(
                    f"Batch {active['batch_id']} of this schedule is still {active['status']} and its overlap"
                    " policy is skip"
                )
        stamp = runs.ScheduleStamp(schedule_id, row["name"], None)
        created = await runs.insert_batch(
            cur, [registry[c] for c in row["collectors"]], row["priority"], f"schedule:{row['name']}", stamp
        )
        await audit_store.record(cur, audit.about(created[0]["batch_id"]))
        return created


@dataclasses.dataclass(frozen=True)
class FireResult:
    """What one claim of a due schedule did. ``outcome`` is None when no due time was left to
    fire (all missed) or another record of it existed (``duplicate``)."""

    schedule_id: str
    name: str
    due_at: dt.datetime | None
    outcome: str | None
    batch_id: str | None = None
    detail: str | None = None
    missed: int = 0
    missed_more: bool = False  # counting stopped at cron.MAX_COUNTED


async def fire_next_due(
    pool: aiopg.Pool, registry: Mapping[str, CollectorSpec], now: dt.datetime, grace: float, node: str
) -> FireResult | None:
    """Deal with one due schedule not locked by another node, or return None if none is due.

    Its due times up to ``now``: the latest fires if it is at most ``grace`` seconds old, or
    under catch-up ``latest`` whatever its age; every other one is missed (counted, logged).
    """
    async with database.transaction(pool) as cur:
        await cur.execute(
            "SELECT * FROM schedules WHERE enabled AND next_due_at <= %s"
            " ORDER BY next_due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            (now,),
        )
        row: Row | None = await cur.fetchone()
        if row is None:
            return None
        count, latest, capped = due_between(row["cron"], row["timezone"], row["next_due_at"], now)
        fire_at = None
        if latest is not None and (row["catch_up"] == "latest" or (now - latest).total_seconds() <= grace):
            fire_at = latest
        missed = count - (1 if fire_at is not None else 0)
        result = FireResult(row["schedule_id"], row["name"], fire_at, None, missed=missed, missed_more=capped)
        if fire_at is not None:
            result = await _fire(cur, row, fire_at, registry, node, result)
        await cur.execute(
            "UPDATE schedules SET next_due_at = %s WHERE schedule_id = %s",
            (_next_due(row["cron"], row["timezone"], now), row["schedule_id"]),
        )
        await cur.execute(
            "DELETE FROM schedule_fires WHERE schedule_id = %s AND due_at < %s",
            (row["schedule_id"], now - FIRE_RECORDS_KEPT),
        )
    return result


async def _fire(
    cur: Any, row: Row, due_at: dt.datetime, registry: Mapping[str, CollectorSpec], node: str, result: FireResult
) -> FireResult:
    schedule_id = row["schedule_id"]
    # Claim the due time first: if it is already recorded, nothing more happens for it.
    await cur.execute(
        "INSERT INTO schedule_fires (schedule_id, due_at, outcome, node) VALUES (%s, %s, 'fired', %s)"
        " ON CONFLICT DO NOTHING RETURNING due_at",
        (schedule_id, due_at, node),
    )
    if await cur.fetchone() is None:
        return dataclasses.replace(result, outcome="duplicate")
    unknown = [c for c in row["collectors"] if c not in registry]
    active = await _active_batch(cur, schedule_id) if row["overlap"] == "skip" else None
    batch_id = None
    if unknown:
        outcome, detail = "skipped_invalid", f"unknown collector(s): {', '.join(unknown)}"
    elif active is not None:
        outcome, detail = "skipped_overlap", f"batch {active['batch_id']} is still {active['status']}"
    else:
        stamp = runs.ScheduleStamp(schedule_id, row["name"], due_at)
        batch, _ = await runs.insert_batch(
            cur, [registry[c] for c in row["collectors"]], row["priority"], f"schedule:{row['name']}", stamp
        )
        outcome, detail, batch_id = "fired", None, batch["batch_id"]
        await audit_store.record(cur, by(schedule_actor(row["name"]), "schedule.fire", schedule_id, batch_id))
    await cur.execute(
        "UPDATE schedule_fires SET outcome = %s, detail = %s, batch_id = %s WHERE schedule_id = %s AND due_at = %s",
        (outcome, detail, batch_id, schedule_id, due_at),
    )
    return dataclasses.replace(result, outcome=outcome, detail=detail, batch_id=batch_id)


async def upsert_declared(pool: aiopg.Pool, declared: Sequence[ScheduleDefinition], now: dt.datetime) -> None:
    """Make the file-declared schedules exactly those declared (keyed by name). The file's
    ``enabled`` is applied when it changes, so a pause over the API survives restarts."""
    async with database.transaction(pool) as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(%s)", (DECLARED_LOCK_ID,))
        for d in declared:
            await cur.execute("SELECT * FROM schedules WHERE name = %s FOR UPDATE", (d.name,))
            row: Row | None = await cur.fetchone()
            if row is None:
                await cur.execute(
                    "INSERT INTO schedules (name, collectors, priority, cron, timezone, enabled, overlap, catch_up,"
                    " source, declared_enabled, next_due_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'file', %s, %s)",
                    (d.name, list(d.collectors), d.priority, d.cron, d.timezone, d.enabled, d.overlap, d.catch_up,
                     d.enabled, _next_due(d.cron, d.timezone, now)),
                )  # fmt: skip
                continue
            if row["source"] == "api":
                log.warning("schedule %r is now declared in the collectors file, which takes it over", d.name)
            enabled = d.enabled if row["declared_enabled"] is not d.enabled else row["enabled"]
            next_due = row["next_due_at"]
            if (enabled and not row["enabled"]) or (row["cron"], row["timezone"]) != (d.cron, d.timezone):
                next_due = _next_due(d.cron, d.timezone, now)
            fields = (list(d.collectors), d.priority, d.cron, d.timezone, enabled, d.overlap, d.catch_up)
            current = (list(row["collectors"]), row["priority"], row["cron"], row["timezone"], row["enabled"],
                       row["overlap"], row["catch_up"])  # fmt: skip
            if fields == current and row["source"] == "file" and row["declared_enabled"] is d.enabled:
                continue
            await cur.execute(
                "UPDATE schedules SET collectors = %s, priority = %s, cron = %s, timezone = %s, enabled = %s,"
                " overlap = %s, catch_up = %s, source = 'file', declared_enabled = %s, next_due_at = %s,"
                " updated_at = clock_timestamp() WHERE schedule_id = %s",
                (*fields, d.enabled, next_due, row["schedule_id"]),
            )
        await cur.execute(
            "DELETE FROM schedules WHERE source = 'file' AND NOT (name = ANY(%s))", ([d.name for d in declared],)
        )
