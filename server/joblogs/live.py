"""Job logs' side of live push (the ``LogSource`` of server/realtime/sources.py): a job's
lines read from the store, each encoded once as the JSON ``GET .../logs`` lists."""

from __future__ import annotations

import json

import aiopg

from server.joblogs import store
from server.joblogs.representation import log_line_json
from server.realtime.sources import LogPage


class JobLogSource:
    async def read_log(self, pool: aiopg.Pool, job_id: str, after: int, limit: int) -> LogPage | None:
        found = await store.read_lines(pool, job_id, after, limit)
        if found is None:
            return None
        job, rows, _ = found
        return LogPage(
            job["status"],
            [row["line_no"] for row in rows],
            [json.dumps(log_line_json(row)).encode("utf-8") for row in rows],
        )


LOGS = JobLogSource()
