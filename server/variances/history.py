"""Variances by date, answered from their history (docs/VARIANCES.md): a variance's status on a
day is the status of its last change before that day ended (UTC).

A day's list holds the variances open at its end, and with ``include_resolved`` also those
accepted or marked fixed by then and those resolved during that day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiopg

from server.db import database
from server.variances.store import COLUMNS

AVAILABLE_DAYS = 30

# The status of every variance known at %(end)s: its last change before then.
_STATE = """
    SELECT DISTINCT ON (h.variance_id) h.variance_id, h.to_status, h.changed_at
      FROM variance_history h WHERE h.changed_at < {end}
     ORDER BY h.variance_id, h.changed_at DESC, h.id DESC
"""
_ON_THE_LIST = "(s.to_status IN ('active', 'accepted', 'manually_fixed') OR s.changed_at >= {start})"
_UTC_MIDNIGHT = "(({day})::date::timestamp AT TIME ZONE 'UTC')"


def _bounds(day: dt.date) -> dict[str, Any]:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return {"start": start, "end": start + dt.timedelta(days=1)}


@database.read_only
async def variances_on(pool: aiopg.Pool, day: dt.date, include_resolved: bool) -> list[dict[str, Any]]:
    """The variances of ``day``, each with the status it had then."""
    shown = _ON_THE_LIST.format(start="%(start)s") if include_resolved else "s.to_status = 'active'"
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"SELECT {COLUMNS.replace('v.status,', '')}, s.to_status AS status"
            f" FROM ({_STATE.format(end='%(end)s')}) s JOIN variances v ON v.id = s.variance_id"
            f" WHERE {shown} ORDER BY v.type, v.subject_key",
            _bounds(day),
        )
        return [dict(r) for r in await cur.fetchall()]


@database.read_only
async def check_on(pool: aiopg.Pool, day: dt.date) -> dict[str, Any] | None:
    """The last complete check that ended by the end of ``day``."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT check_id, finished_at, ninja_devices, threatlocker_devices, found FROM variance_checks"
            " WHERE complete AND finished_at < %(end)s ORDER BY finished_at DESC LIMIT 1",
            _bounds(day),
        )
        row = await cur.fetchone()
    return dict(row) if row is not None else None


@database.read_only
async def available_dates(pool: aiopg.Pool, today: dt.date) -> list[dict[str, Any]]:
    """The days of the last AVAILABLE_DAYS with a complete check, newest first: the device
    counts of the day's last check, what it found, and how many were open at the day's end."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"""WITH days AS (
                    SELECT DISTINCT ON (day) day, ninja_devices, threatlocker_devices, found
                      FROM (SELECT (finished_at AT TIME ZONE 'UTC')::date AS day, finished_at, ninja_devices,
                                   threatlocker_devices, found
                              FROM variance_checks WHERE complete AND finished_at IS NOT NULL) c
                     WHERE day > %(today)s::date - %(days)s AND day <= %(today)s::date
                     ORDER BY day, finished_at DESC
                )
                SELECT d.day, d.ninja_devices, d.threatlocker_devices, d.found,
                       (SELECT count(*) FROM ({_STATE.format(end=_UTC_MIDNIGHT.format(day="d.day + 1"))}) s
                         WHERE s.to_status = 'active') AS unresolved
                  FROM days d ORDER BY d.day DESC""",
            {"today": today, "days": AVAILABLE_DAYS},
        )
        return [dict(r) for r in await cur.fetchall()]


@database.read_only
async def trends(pool: aiopg.Pool, start: dt.date, end: dt.date, variance_type: str | None) -> list[dict[str, Any]]:
    """(day, type, total, unresolved) for every day from ``start`` to ``end`` that has any."""
    day_start = _UTC_MIDNIGHT.format(day="g.day")
    day_end = _UTC_MIDNIGHT.format(day="g.day + 1")
    state = _STATE.format(end=day_end)
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"""SELECT g.day::date AS day, v.type, count(*) AS total,
                       count(*) FILTER (WHERE s.to_status = 'active') AS unresolved
                  FROM (SELECT d::date AS day FROM generate_series(%(start)s::date, %(end)s::date, interval '1 day')
                          AS d) AS g
                 CROSS JOIN LATERAL ({state}) s
                  JOIN variances v ON v.id = s.variance_id
                 WHERE {_ON_THE_LIST.format(start=day_start)} AND (%(type)s::text IS NULL OR v.type = %(type)s)
                 GROUP BY g.day, v.type ORDER BY g.day, v.type""",
            {"start": start, "end": end, "type": variance_type},
        )
        return [dict(r) for r in await cur.fetchall()]
