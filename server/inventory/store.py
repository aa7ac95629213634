"""Reading the device inventory (the vendor collectors write it: collectors/inventory_store.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import aiopg

from collectors.inventory_records import SOURCES
from server.db import database

DEVICE_COLUMNS = """
    source, vendor_id, organization_id, organization_name, display_name, host_name, dns_name, platform,
    device_class, os_name, serial_number, manufacturer, model, ip_addresses, mac_addresses, online,
    last_contact_at, first_seen_at, last_seen_at, last_seen_job_id, removed_at
"""
COVERAGE_SAMPLE = 20


@dataclasses.dataclass(frozen=True)
class DeviceFilter:
    source: str | None = None
    q: str | None = None
    platform: str | None = None
    removed: bool | None = False  # None: both
    seen_since: dt.datetime | None = None
    missing_from: str | None = None
    after: tuple[str, str] | None = None  # (source, vendor id) of the last device of the previous page


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(flt: DeviceFilter) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if flt.source is not None:
        clauses.append("d.source = %(source)s")
        params["source"] = flt.source
    if flt.q is not None:
        clauses.append(
            "(d.display_name ILIKE %(q)s OR d.host_name ILIKE %(q)s OR d.dns_name ILIKE %(q)s"
            " OR d.host_key ILIKE %(q)s)"
        )
        params["q"] = _like_pattern(flt.q)
    if flt.platform is not None:
        clauses.append("d.platform = %(platform)s")
        params["platform"] = flt.platform
    if flt.removed is not None:
        clauses.append("d.removed_at IS NOT NULL" if flt.removed else "d.removed_at IS NULL")
    if flt.seen_since is not None:
        clauses.append("d.last_seen_at >= %(seen_since)s")
        params["seen_since"] = flt.seen_since
    if flt.missing_from is not None:
        clauses.append(
            "d.host_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM inventory_devices o WHERE o.source = %(missing_from)s"
            " AND o.removed_at IS NULL AND o.host_key = d.host_key)"
        )
        params["missing_from"] = flt.missing_from
    if flt.after is not None:
        clauses.append("(d.source, d.vendor_id) > (%(after_source)s, %(after_id)s)")
        params["after_source"], params["after_id"] = flt.after
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


@database.read_only
async def list_devices(pool: aiopg.Pool, flt: DeviceFilter, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` devices in (source, vendor id) order; and whether more follow."""
    where, params = _where(flt)
    params["limit"] = limit + 1
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"SELECT {DEVICE_COLUMNS} FROM inventory_devices d{where} ORDER BY d.source, d.vendor_id LIMIT %(limit)s",
            params,
        )
        rows = [dict(r) for r in await cur.fetchall()]
    return rows[:limit], len(rows) > limit


@database.read_only
async def get_device(pool: aiopg.Pool, source: str, vendor_id: str) -> dict[str, Any] | None:
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"SELECT {DEVICE_COLUMNS}, raw::text AS raw FROM inventory_devices WHERE source = %s AND vendor_id = %s",
            (source, vendor_id),
        )
        row = await cur.fetchone()
    return dict(row) if row is not None else None


@database.read_only
async def summary(pool: aiopg.Pool) -> dict[str, Any]:
    """Per source: counts and the last complete run; and the coverage gap between sources."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT source, count(*) FILTER (WHERE removed_at IS NULL) AS devices,"
            " count(*) FILTER (WHERE removed_at IS NOT NULL) AS removed"
            " FROM inventory_devices GROUP BY source"
        )
        counts = {r["source"]: r for r in await cur.fetchall()}
        await cur.execute(
            "SELECT DISTINCT ON (source) source, job_id, batch_id, started_at, finished_at, devices_seen,"
            " devices_new, devices_gone FROM inventory_runs WHERE status = 'completed'"
            " ORDER BY source, finished_at DESC"
        )
        last_runs = {r["source"]: r for r in await cur.fetchall()}
        coverage = []
        for source in SOURCES:
            for other in SOURCES:
                if other == source:
                    continue
                await cur.execute(
                    "SELECT coalesce(d.host_name, d.display_name, d.host_key) AS name, count(*) OVER () AS total"
                    " FROM inventory_devices d WHERE d.source = %(source)s AND d.removed_at IS NULL"
                    " AND d.host_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM inventory_devices o"
                    " WHERE o.source = %(other)s AND o.removed_at IS NULL AND o.host_key = d.host_key)"
                    " ORDER BY d.host_key, d.vendor_id LIMIT %(sample)s",
                    {"source": source, "other": other, "sample": COVERAGE_SAMPLE},
                )
                rows = await cur.fetchall()
                coverage.append(
                    {
                        "source": source,
                        "missing_from": other,
                        "devices": int(rows[0]["total"]) if rows else 0,
                        "sample": [r["name"] for r in rows],
                    }
                )
    return {"counts": counts, "last_runs": last_runs, "coverage": coverage}
