"""The REST contract: trigger, read, cancel and report runs."""

from __future__ import annotations

import json

from aiohttp import web

from collectors.contract import (
    DEFAULT_PRIORITY,
    MAX_ERROR_CHARS,
    MAX_MESSAGE_CHARS,
    PERCENT_RULE,
    PRIORITIES,
    REPORTABLE_STATUSES,
    checked_percent,
)
from server.api.http_cache import versioned_response
from server.api.roles import requires
from server.api.timestamps import utc_now
from server.api.validation import (
    accepts_query,
    check_collector_names,
    check_text,
    path_batch_id,
    path_job_id,
    read_json_object,
    reject_unknown_fields,
)
from server.errors import ValidationError
from server.keys import POOL, REGISTRY
from server.realtime.polling import poll_batch, poll_job
from server.runs import representation as rep
from server.runs import store as runs
from server.runs.collector_filter import named_collectors
from server.security.keys import PRINCIPAL

routes = web.RouteTableDef()


@routes.post("/api/collectors/run")
@requires("trigger")
async def trigger_run(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, ("collectors", "priority"))
    registry = request.app[REGISTRY]
    names = body.get("collectors")
    if not isinstance(names, list) or not names:
        raise ValidationError("collectors must be a non-empty list of collector names")
    names = check_collector_names(names, registry)
    priority = body.get("priority", DEFAULT_PRIORITY)
    if priority not in PRIORITIES:
        raise ValidationError(f"priority must be one of {', '.join(PRIORITIES)}")
    principal = request.get(PRINCIPAL)
    requested_by = principal.name if principal is not None else None  # started_by's name
    created = await runs.create_batch(request.app[POOL], [registry[n] for n in names], priority, requested_by)
    return web.json_response(rep.created_batch_json(*created), status=201)


@routes.get("/api/collectors")
@requires("read")
async def list_collectors(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return web.json_response(
        {
            "collectors": [
                {"name": spec.name, "job_name": spec.display_name, "timeout_seconds": spec.timeout}
                for spec in sorted(registry.values(), key=lambda s: s.name)
            ]
        }
    )


@routes.get("/api/collectors/runs/batch/{batch_id}")
@requires("read")
@accepts_query("wait")
async def get_batch(request: web.Request) -> web.StreamResponse:
    """Served from the live-push cache; ``?wait=N`` long-polls (realtime/polling.py)."""
    return await poll_batch(request, path_batch_id(request))


@routes.get("/api/collectors/runs/job/{job_id}")
@requires("read")
@accepts_query("wait")
async def get_job(request: web.Request) -> web.StreamResponse:
    return await poll_job(request, path_job_id(request))


@routes.get("/api/collectors/runs/latest")
@requires("read")
@accepts_query("collectors")
async def get_latest(request: web.Request) -> web.StreamResponse:
    """Any collector with runs may be named, configured or not; the answer says which of the
    named ones are no longer configured."""
    named, unconfigured = await named_collectors(request)
    registry = request.app[REGISTRY]
    names = named or sorted(registry)
    seq, latest = await runs.latest_runs(request.app[POOL], names)
    body = {
        "latest_runs": [rep.job_json(row) for row in latest],
        "total_runs": len(latest),
        "generated_at": utc_now(),
        "unconfigured_collectors": unconfigured,
    }
    return versioned_response(request, "l", seq, json.dumps(body).encode())


@routes.post("/api/collectors/runs/batch/{batch_id}/cancel")
@requires("trigger")
async def cancel_batch(request: web.Request) -> web.StreamResponse:
    batch_id = path_batch_id(request)
    pool = request.app[POOL]
    await runs.cancel_batch(pool, batch_id)
    found = await runs.batch_rows(pool, batch_id=batch_id)
    assert found is not None
    return web.json_response(rep.batch_json(*found))


@routes.post("/api/collectors/runs/job/{job_id}/cancel")
@requires("trigger")
async def cancel_job(request: web.Request) -> web.StreamResponse:
    job_id = path_job_id(request)
    pool = request.app[POOL]
    await runs.cancel_job(pool, job_id)
    found = await runs.fetch_job(pool, job_id)
    assert found is not None
    return web.json_response(rep.job_json(found))


@routes.post("/api/collectors/runs/job/{job_id}/progress")
@requires("trigger")
async def report_progress(request: web.Request) -> web.StreamResponse:
    """Progress over HTTP, for collectors that cannot reach the database."""
    job_id = path_job_id(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, ("status", "progress_percent", "message", "error"))
    status = body.get("status")
    if status not in REPORTABLE_STATUSES:
        raise ValidationError(f"status must be one of {', '.join(REPORTABLE_STATUSES)}")
    percent = body.get("progress_percent")
    if percent is not None:
        try:
            percent = checked_percent(percent)  # 50.0 is 50, 50.5 is refused
        except ValueError:
            raise ValidationError(f"progress_percent must be {PERCENT_RULE}, or null") from None
    message = check_text("message", body.get("message"), MAX_MESSAGE_CHARS)
    error = check_text("error", body.get("error"), MAX_ERROR_CHARS)
    pool = request.app[POOL]
    await runs.report_progress(pool, job_id, status, percent, message, error)
    found = await runs.fetch_job(pool, job_id)
    assert found is not None
    return web.json_response(rep.job_json(found))
