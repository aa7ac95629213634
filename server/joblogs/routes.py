"""A job's log lines over REST: ``GET /api/collectors/runs/job/{job_id}/logs?after=N&limit=M``.
(The live tail is ``.../logs/events``, server/joblogs/stream.py.)"""

from __future__ import annotations

from aiohttp import web

from collectors.contract import MAX_LOG_PAGE, TERMINAL_STATUSES
from server.api.roles import requires
from server.api.validation import accepts_query, path_job_id, query_int
from server.errors import NotFoundError
from server.joblogs import representation as rep
from server.joblogs import store as logs
from server.keys import POOL

routes = web.RouteTableDef()

DEFAULT_LOG_PAGE = 1000
# The largest ``after`` accepted (a billion lines: far past any cap).
MAX_LINE_NUMBER = 999_999_999


@routes.get("/api/collectors/runs/job/{job_id}/logs")
@requires("read")
@accepts_query("after", "limit")
async def get_logs(request: web.Request) -> web.Response:
    job_id = path_job_id(request)
    after = query_int(request, "after", 0, 0, MAX_LINE_NUMBER)
    limit = query_int(request, "limit", DEFAULT_LOG_PAGE, 1, MAX_LOG_PAGE)
    found = await logs.read_lines(request.app[POOL], job_id, after, limit)
    if found is None:
        raise NotFoundError("Job not found")
    job, lines, dropped = found
    body = {
        "job_id": job_id,
        "status": job["status"],
        "lines": [rep.log_line_json(line) for line in lines],
        "dropped_lines": dropped,
        "next_after": lines[-1]["line_no"] if lines else after,
        "complete": job["status"] in TERMINAL_STATUSES and len(lines) < limit,
    }
    return web.json_response(body)
