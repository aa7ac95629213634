"""The variances' side of live push (the ``VarianceSource`` of server/realtime/sources.py).

Every change of a variance is a row of ``variance_history`` (a checks run's and an operator's
alike); its id is the stream's seq. Writers take the variances' lock before their first write
(``lock_variances``), so ids are handed out in commit order and a follower that resumes after
seq N misses nothing. A page is read in one snapshot: the changes after the follower's seq,
each with the variance as ``GET /api/exceptions`` shows it, headed by the open counts.
"""

from __future__ import annotations

import json
from typing import Any

import aiopg

from collectors.variance_settings import OPEN_STATUS, VARIANCE_STATUSES, VARIANCE_TYPES
from server.api.timestamps import format_timestamp
from server.db import database
from server.realtime.sources import LogPage
from server.variances.representation import exception_json
from server.variances.store import COLUMNS

# Not a job status: the stream never ends (server/realtime/log_tail.py ends a page whose status
# is terminal).
STREAM_STATUS = "open"


class VarianceChanges:
    async def read_log(self, pool: aiopg.Pool, key: str, after: int, limit: int) -> LogPage | None:
        async with database.transaction(pool) as cur:  # one snapshot: the counts match the changes
            await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            await cur.execute(
                f"SELECT h.id AS seq, h.changed_at, h.changed_by, h.from_status, h.to_status, {COLUMNS}"
                " FROM variance_history h JOIN variances v ON v.id = h.variance_id"
                " WHERE h.id > %s ORDER BY h.id LIMIT %s",
                (after, limit),
            )
            rows = await cur.fetchall()
            await cur.execute("SELECT type, status, count(*) AS n FROM variances GROUP BY type, status")
            counts = await cur.fetchall()
        return LogPage(
            STREAM_STATUS,
            [row["seq"] for row in rows],
            [json.dumps(change_json(row)).encode("utf-8") for row in rows],
            header=json.dumps(counts_json(counts)).encode("utf-8"),
        )

    async def latest_seq(self, pool: aiopg.Pool) -> int:
        async with database.cursor(pool) as cur:
            await cur.execute("SELECT coalesce(max(id), 0) AS seq FROM variance_history")
            row = await cur.fetchone()
        return int(row["seq"])


def change_json(row: dict[str, Any]) -> dict[str, Any]:
    """One change: its seq, what moved (from and to status, by whom), and the variance now."""
    return {
        "seq": row["seq"],
        "changed_at": format_timestamp(row["changed_at"]),
        "changed_by": row["changed_by"],
        "from_status": row["from_status"],
        "to_status": row["to_status"],
        "variance": exception_json(row),
    }


def counts_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's header: how many variances are open, in all and by type, and how many there
    are in each status."""
    by_type = dict.fromkeys(VARIANCE_TYPES, 0)
    by_status = dict.fromkeys(VARIANCE_STATUSES, 0)
    for row in rows:
        by_status[row["status"]] += row["n"]
        if row["status"] == OPEN_STATUS:
            by_type[row["type"]] += row["n"]
    return {"open": by_status[OPEN_STATUS], "by_type": by_type, "by_status": by_status}


VARIANCES = VarianceChanges()
