"""The audit trail's SQL: a row written in the transaction of the change it records (``record``
with the change's cursor; ``record_sync`` for the CLI's psycopg2 connection), a refusal on its
own (``record_alone``), the filtered, paged listing, and retention.

Newest first by ``audit_id`` (a sequence: a row committed later may carry a smaller id than
one already shown, but never one beyond the cursor's, so paging never repeats a row)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import aiopg

from server.audit.entry import AuditEntry
from server.db import database

_INSERT = (
    "INSERT INTO audit_log (actor, actor_kind, key_id, role, action, target_ids, request_id, client_address,"
    " outcome, status, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _params(entry: AuditEntry) -> tuple[Any, ...]:
    actor = entry.actor
    return (
        actor.name[:300],
        actor.kind,
        actor.key_id,
        actor.role,
        entry.action,
        list(entry.target_ids),
        entry.request_id,
        entry.client_address,
        entry.outcome,
        entry.status,
        entry.detail,
    )


async def record(cur: Any, entry: AuditEntry) -> None:
    """Write ``entry`` with ``cur``: inside the transaction of the change it records."""
    await cur.execute(_INSERT, _params(entry))


def record_sync(cur: Any, entry: AuditEntry) -> None:
    """``record`` for a psycopg2 cursor (the CLI's commands that write the database directly)."""
    cur.execute(_INSERT, _params(entry))


async def record_alone(pool: aiopg.Pool, entry: AuditEntry) -> None:
    """A row on its own: a refused request changed nothing to share a transaction with."""
    async with database.cursor(pool) as cur:
        await record(cur, entry)


@dataclasses.dataclass(frozen=True)
class Filters:
    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." ("schedule.")
    target: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@database.read_only
async def list_entries(pool: aiopg.Pool, filters: Filters, before: int | None, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rows, newest first, older than ``before`` (an audit_id) if given."""
    action_test = "starts_with(action, %s)" if (filters.action or "").endswith(".") else "action = %s"
    wanted = (  # (condition, its value): a condition applies when its value is given
        ("actor = %s", filters.actor),
        (action_test, filters.action),
        ("target_ids @> ARRAY[%s]::text[]", filters.target),
        ("outcome = %s", filters.outcome),
        ("at >= %s", filters.since),
        ("at < %s", filters.until),
        ("audit_id < %s", before),
    )
    given = [(condition, value) for condition, value in wanted if value is not None]
    conditions = ["true", *(condition for condition, _ in given)]
    params = [value for _, value in given]
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"SELECT * FROM audit_log WHERE {' AND '.join(conditions)} ORDER BY audit_id DESC LIMIT %s",
            (*params, limit),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


async def delete_older_than(pool: aiopg.Pool, cutoff: dt.datetime, batch: int) -> int:
    """Remove up to ``batch`` rows older than ``cutoff``; the number removed."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "DELETE FROM audit_log WHERE audit_id IN (SELECT audit_id FROM audit_log WHERE at < %s LIMIT %s)",
            (cutoff, batch),
        )
        deleted: int = cur.rowcount
    return deleted
