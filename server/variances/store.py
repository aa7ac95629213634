"""Reading the variances as they stand now, and the operators' changes to them (the checks
write them: collectors/variance_checks.py). Reports by date are in ``history.py``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import aiopg

from collectors.inventory_records import SOURCES
from collectors.variance_checks import CHECKS_LOCK, LOCK_NAMESPACE
from server.audit import store as audit_store
from server.audit.entry import AuditEntry
from server.db import database

COLUMNS = """
    v.id, v.type, v.subject_key, v.hostname, v.organization, v.details, v.first_seen, v.last_seen, v.status,
    v.note, v.reason, v.expires_on, v.update_type, v.old_value, v.new_value, v.updated_by, v.updated_at,
    v.resolved_at, v.resolved_by
"""
RECENT_CHANGES = 20


@dataclasses.dataclass(frozen=True)
class ExceptionFilter:
    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    resolved: bool | None = None
    organization: str | None = None
    q: str | None = None
    before_id: int | None = None  # keyset paging: ids below the last one of the previous page


def passes(flt: ExceptionFilter, row: dict[str, Any]) -> bool:
    """Whether ``row`` (a variance with its ``status``) passes ``flt``: ``_where`` in Python, for
    rows read otherwise (a past day's, from the history). ``before_id`` is not applied."""
    status = row["status"]
    if flt.types and row["type"] not in flt.types:
        return False
    if flt.statuses and status not in flt.statuses:
        return False
    if flt.resolved is not None and (status != "active") != flt.resolved:
        return False
    organization = (row["organization"] or "").lower()
    if flt.organization is not None and (row["organization"] is None or organization != flt.organization.lower()):
        return False
    if flt.q is not None:
        needle = flt.q.lower()
        return any(needle in (row[k] or "").lower() for k in ("hostname", "subject_key", "organization"))
    return True


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(flt: ExceptionFilter) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if flt.types:
        clauses.append("v.type = ANY(%(types)s)")
        params["types"] = list(flt.types)
    if flt.statuses:
        clauses.append("v.status = ANY(%(statuses)s)")
        params["statuses"] = list(flt.statuses)
    if flt.resolved is not None:
        clauses.append("v.status <> 'active'" if flt.resolved else "v.status = 'active'")
    if flt.organization is not None:
        clauses.append("lower(v.organization) = lower(%(organization)s)")
        params["organization"] = flt.organization
    if flt.q is not None:
        clauses.append("(v.hostname ILIKE %(q)s OR v.subject_key ILIKE %(q)s OR v.organization ILIKE %(q)s)")
        params["q"] = like_pattern(flt.q)
    if flt.before_id is not None:
        clauses.append("v.id < %(before_id)s")
        params["before_id"] = flt.before_id
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


@database.read_only
async def list_exceptions(
    pool: aiopg.Pool, flt: ExceptionFilter, limit: int, offset: int
) -> tuple[list[dict[str, Any]], bool]:
    """Newest first (by id); and whether more follow."""
    where, params = _where(flt)
    params.update(limit=limit + 1, offset=offset)
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"SELECT {COLUMNS} FROM variances v{where} ORDER BY v.id DESC LIMIT %(limit)s OFFSET %(offset)s", params
        )
        rows = [dict(r) for r in await cur.fetchall()]
    return rows[:limit], len(rows) > limit


async def current_variances(
    pool: aiopg.Pool, include_resolved: bool, types: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Every variance as it stands (open ones only unless ``include_resolved``), by type then host."""
    return await matching_variances(pool, ExceptionFilter(types=types, resolved=None if include_resolved else False))


@database.read_only
async def matching_variances(pool: aiopg.Pool, flt: ExceptionFilter) -> list[dict[str, Any]]:
    """Every variance as it stands that ``flt`` lets through (as ``GET /api/exceptions``
    filters), by type then host."""
    where, params = _where(flt)
    async with database.cursor(pool) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM variances v{where} ORDER BY v.type, v.subject_key", params)
        return [dict(r) for r in await cur.fetchall()]


@database.read_only
async def counts(pool: aiopg.Pool) -> list[dict[str, Any]]:
    """(type, status, n) of every variance."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT type, status, count(*) AS n FROM variances GROUP BY type, status ORDER BY type, status"
        )
        return [dict(r) for r in await cur.fetchall()]


@database.read_only
async def recent_changes(pool: aiopg.Pool) -> list[dict[str, Any]]:
    """The latest changes people made (not the checks')."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT h.variance_id, v.type, v.hostname, h.changed_at, h.changed_by, h.from_status, h.to_status, h.note"
            " FROM variance_history h JOIN variances v ON v.id = h.variance_id"
            " WHERE h.check_id IS NULL AND h.from_status IS NOT NULL ORDER BY h.id DESC LIMIT %s",
            (RECENT_CHANGES,),
        )
        return [dict(r) for r in await cur.fetchall()]


@database.read_only
async def latest_check(pool: aiopg.Pool) -> dict[str, Any] | None:
    """The last complete check, with the finish of the inventory runs it read."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT c.check_id, c.job_id, c.finished_at, c.ninja_devices, c.threatlocker_devices, c.found,"
            " n.finished_at AS ninja_collected, t.finished_at AS threatlocker_collected"
            " FROM variance_checks c LEFT JOIN inventory_runs n ON n.run_id = c.ninja_run_id"
            " LEFT JOIN inventory_runs t ON t.run_id = c.threatlocker_run_id"
            " WHERE c.complete AND c.finished_at IS NOT NULL ORDER BY c.finished_at DESC LIMIT 1"
        )
        row = await cur.fetchone()
    return dict(row) if row is not None else None


@database.read_only
async def source_status(pool: aiopg.Pool) -> dict[str, dict[str, Any]]:
    """Per source: present devices and the finish of its last complete run."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT s.source, (SELECT count(*) FROM inventory_devices d WHERE d.source = s.source"
            " AND d.removed_at IS NULL) AS devices, (SELECT max(finished_at) FROM inventory_runs r"
            " WHERE r.source = s.source AND r.status = 'completed') AS collected"
            " FROM unnest(%s::text[]) AS s (source)",
            (list(SOURCES),),
        )
        return {r["source"]: dict(r) for r in await cur.fetchall()}


@database.read_only
async def recent_failures(pool: aiopg.Pool, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Failed jobs of the vendor collectors and the checks in the last 24 hours: the newest
    ``limit`` of them, and how many there were."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT collector, job_name, status, message, error, started_at, ended_at, count(*) OVER () AS total"
            " FROM job_runs WHERE status = 'failed' AND ended_at > now() - interval '24 hours'"
            " AND collector = ANY(%s) ORDER BY ended_at DESC LIMIT %s",
            ([*SOURCES, "cross-vendor-checks"], limit),
        )
        rows = [dict(r) for r in await cur.fetchall()]
    return rows, int(rows[0]["total"]) if rows else 0


@database.read_only
async def search_devices(
    pool: aiopg.Pool, q: str, sources: tuple[str, ...], limit: int, cut: bool
) -> list[dict[str, Any]]:
    """Present devices whose canonical key starts with the query's, or whose names contain it."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT d.source, coalesce(d.host_name, d.dns_name) AS hostname, d.display_name,"
            " coalesce(d.organization_name, d.raw ->> 'organizationName', d.organization_id) AS organization_name,"
            " d.last_seen_at, variance_host_key(d.host_key, %(cut)s) AS canonical_key"
            " FROM inventory_devices d WHERE d.removed_at IS NULL AND d.source = ANY(%(sources)s) AND ("
            " variance_host_key(d.host_key, %(cut)s) LIKE %(prefix)s OR d.host_name ILIKE %(like)s"
            " OR d.display_name ILIKE %(like)s OR d.dns_name ILIKE %(like)s)"
            " ORDER BY canonical_key NULLS LAST, d.source, d.vendor_id LIMIT %(limit)s",
            {
                "cut": cut,
                "sources": list(sources),
                "prefix": like_pattern(q)[1:],  # the key's prefix: no leading %
                "like": like_pattern(q),
                "limit": limit,
            },
        )
        return [dict(r) for r in await cur.fetchall()]


@database.read_only
async def host_key(pool: aiopg.Pool, name: str, cut: bool) -> str | None:
    async with database.cursor(pool) as cur:
        await cur.execute("SELECT variance_host_key(%s, %s) AS key", (name, cut))
        row = await cur.fetchone()
    return row["key"] if row else None


@database.read_only
async def organization_map(pool: aiopg.Pool) -> list[dict[str, Any]]:
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT ninja_organization, threatlocker_organization, updated_by, updated_at"
            " FROM variance_organization_map ORDER BY ninja_organization, threatlocker_organization"
        )
        return [dict(r) for r in await cur.fetchall()]


async def replace_organization_map(
    pool: aiopg.Pool, pairs: list[tuple[str, str]], who: str, audit: AuditEntry | None = None
) -> None:
    """The map becomes exactly ``pairs`` (one transaction); the next check reads it."""
    async with database.transaction(pool) as cur:
        await cur.execute("DELETE FROM variance_organization_map")
        if pairs:
            await cur.execute(
                "INSERT INTO variance_organization_map (ninja_organization, threatlocker_organization, updated_by)"
                " SELECT n, t, %s FROM unnest(%s::text[], %s::text[]) AS p (n, t) ON CONFLICT DO NOTHING",
                (who, [p[0] for p in pairs], [p[1] for p in pairs]),
            )
        if audit is not None:  # server/audit/: the change's record, in its transaction
            await audit_store.record(cur, audit.about(detail=f"{len(pairs)} mapping(s)"))


@dataclasses.dataclass(frozen=True)
class Change:
    """One operator action on variances: the statuses it applies to, the status it leads to and
    the columns it sets (each a SQL expression over the parameters)."""

    from_statuses: tuple[str, ...]
    to_status: str
    sets: str


_MANUAL = "update_type = %(update_type)s, old_value = %(old_value)s, new_value = %(new_value)s"
_REOPEN = "resolved_at = NULL, resolved_by = NULL, reason = NULL, expires_on = NULL"
CHANGES = {
    "resolve": Change(
        ("active", "accepted", "manually_fixed"), "resolved", "resolved_at = now(), resolved_by = %(who)s"
    ),
    "mark_manually_fixed": Change(
        ("active", "accepted"), "manually_fixed", f"resolved_at = now(), resolved_by = %(who)s, {_MANUAL}"
    ),
    "accept": Change(
        ("active", "accepted", "manually_fixed"), "accepted", "reason = %(reason)s, expires_on = %(expires_on)s"
    ),
    "reopen": Change(("resolved", "collector_verified", "manually_fixed", "accepted"), "active", _REOPEN),
    "reset_status": Change(
        ("resolved", "collector_verified", "manually_fixed", "accepted"),
        "active",
        f"{_REOPEN}, update_type = NULL, old_value = NULL, new_value = NULL",
    ),
}


@dataclasses.dataclass(frozen=True)
class ChangeRequest:
    action: str
    who: str
    note: str | None = None
    reason: str | None = None
    expires_on: dt.date | None = None
    update_type: str | None = None
    old_value: Any = None
    new_value: Any = None


async def apply_change(
    pool: aiopg.Pool, ids: list[int], request: ChangeRequest, audit: AuditEntry | None = None
) -> tuple[list[int], list[int]]:
    """Apply ``request`` to the variances ``ids`` in one transaction, with a history row each.
    Returns (unknown ids, ids changed); with any unknown id nothing is changed."""
    change = CHANGES[request.action]
    params = {
        "ids": ids,
        "from": list(change.from_statuses),
        "to": change.to_status,
        "who": request.who,
        "note": request.note,
        "reason": request.reason,
        "expires_on": request.expires_on,
        "update_type": request.update_type,
        "old_value": json.dumps(request.old_value) if request.old_value is not None else None,
        "new_value": json.dumps(request.new_value) if request.new_value is not None else None,
        "history_note": request.note or _describe(request),
    }
    async with database.transaction(pool) as cur:
        # The checks' lock first: every writer of the history holds it, so history ids (the seq
        # of the live stream, server/variances/live.py) are handed out in commit order and a
        # follower resuming after seq N misses nothing. An operator's change waits for a checks
        # run in progress (a few seconds at most) rather than racing it.
        await cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, CHECKS_LOCK))
        await cur.execute("SELECT id FROM variances WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE", params)
        known = {r["id"] for r in await cur.fetchall()}
        unknown = sorted(set(ids) - known)
        if unknown:
            return unknown, []
        await cur.execute(
            f"""WITH old AS (
                    SELECT id, status FROM variances WHERE id = ANY(%(ids)s) AND status = ANY(%(from)s)
                ), changed AS (
                    UPDATE variances v SET status = %(to)s, updated_by = %(who)s, updated_at = now(),
                           note = coalesce(%(note)s, v.note), {change.sets}
                      FROM old WHERE v.id = old.id
                    RETURNING v.id, old.status AS from_status
                )
                INSERT INTO variance_history (variance_id, changed_by, from_status, to_status, note)
                SELECT id, %(who)s, from_status, %(to)s, %(history_note)s FROM changed
                RETURNING variance_id""",
            params,
        )
        changed = sorted(r["variance_id"] for r in await cur.fetchall())
        if audit is not None:  # server/audit/: the change's record, in its transaction
            detail = f"{request.action}: {len(changed)} of {len(ids)} changed"
            await audit_store.record(cur, audit.about(*map(str, changed), detail=detail))
    return [], changed


def _describe(request: ChangeRequest) -> str:
    if request.action == "accept":
        until = f" until {request.expires_on.isoformat()}" if request.expires_on else ""
        return f"accepted{until}: {request.reason}"
    return request.action.replace("_", " ")


@database.read_only
async def get_variances(pool: aiopg.Pool, ids: list[int]) -> list[dict[str, Any]]:
    async with database.cursor(pool) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM variances v WHERE v.id = ANY(%s) ORDER BY v.id", (ids,))
        return [dict(r) for r in await cur.fetchall()]


@database.read_only
async def variance_history(pool: aiopg.Pool, variance_id: int) -> list[dict[str, Any]] | None:
    """Every change of one variance, oldest first (None when there is no such variance): read in
    one snapshot, so a change committed between the two reads cannot half show."""
    async with database.transaction(pool) as cur:
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        await cur.execute("SELECT id FROM variances WHERE id = %s", (variance_id,))
        if await cur.fetchone() is None:
            return None
        await cur.execute(
            "SELECT id AS seq, changed_at, changed_by, from_status, to_status, note, check_id"
            " FROM variance_history WHERE variance_id = %s ORDER BY id",
            (variance_id,),
        )
        return [dict(r) for r in await cur.fetchall()]


@database.read_only
async def find_by_key(pool: aiopg.Pool, key: str, variance_type: str) -> list[dict[str, Any]]:
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"SELECT {COLUMNS} FROM variances v WHERE v.subject_key = %s AND v.type = %s", (key, variance_type)
        )
        return [dict(r) for r in await cur.fetchall()]
