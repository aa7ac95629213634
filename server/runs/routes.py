"""The REST contract: trigger, read, cancel and report runs."""

from __future__ import annotations

import json
from typing import Any

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
from collectors.registry import CROSS_VENDOR_CHECKS
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
from server.audit.actions import audited, change
from server.errors import ValidationError
from server.keys import POOL, REGISTRY, SETTINGS
from server.realtime.polling import poll_batch, poll_job
from server.runs import body_sql
from server.runs import representation as rep
from server.runs import store as runs
from server.runs.collector_filter import named_collectors
from server.security.keys import PRINCIPAL

routes = web.RouteTableDef()


@routes.post("/api/collectors/run")
@requires("trigger")
@audited("run.trigger")
async def trigger_run(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, ("collectors", "priority", "run_cross_vendor"))
    registry = request.app[REGISTRY]
    names = body.get("collectors")
    if not isinstance(names, list) or not names:
        raise ValidationError("collectors must be a non-empty list of collector names")
    names = check_collector_names(names, registry)
    cross_vendor = body.get("run_cross_vendor")
    if "run_cross_vendor" in body and not isinstance(cross_vendor, bool):
        raise ValidationError("run_cross_vendor must be true or false")
    if cross_vendor is None:  # absent: when a collector the checks run after is in the batch
        after = registry[CROSS_VENDOR_CHECKS].after
        cross_vendor = request.app[SETTINGS].cross_vendor_by_default and any(n in after for n in names)
    if cross_vendor and CROSS_VENDOR_CHECKS not in names:
        names = [*names, CROSS_VENDOR_CHECKS]
    created = await _start_batch(request, body, names)
    return web.json_response(rep.created_batch_json(*created), status=201)


@routes.post("/api/collectors/cross-vendor/run")
@requires("trigger")
@audited("run.trigger")
async def trigger_cross_vendor(request: web.Request) -> web.Response:
    """A batch of the cross-vendor checks alone (on the latest complete run of each vendor):
    the path and ``success`` key of ES Inventory Hub's endpoint, answered like the run endpoint."""
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, ("priority", "force_refresh"))
    if not isinstance(body.get("force_refresh", False), bool):
        raise ValidationError("force_refresh must be true or false")
    batch, jobs = await _start_batch(request, body, [CROSS_VENDOR_CHECKS])
    return web.json_response(rep.cross_vendor_started_json(batch, jobs), status=201)


async def _start_batch(request: web.Request, body: dict[str, Any], names: list[str]) -> runs.BatchRows:
    priority = body.get("priority", DEFAULT_PRIORITY)
    if priority not in PRIORITIES:
        raise ValidationError(f"priority must be one of {', '.join(PRIORITIES)}")
    registry = request.app[REGISTRY]
    principal = request.get(PRINCIPAL)
    requested_by = principal.name if principal is not None else None  # started_by's name
    specs = [registry[n] for n in names]
    return await runs.create_batch(request.app[POOL], specs, priority, requested_by, audit=change(request))


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
    seq, latest = await body_sql.latest_runs(request.app[POOL], names)
    body = {
        "latest_runs": [json.loads(run.body) for run in latest],
        "total_runs": len(latest),
        "generated_at": utc_now(),
        "unconfigured_collectors": unconfigured,
    }
    return versioned_response(request, "l", seq, json.dumps(body).encode())


@routes.post("/api/collectors/runs/batch/{batch_id}/cancel")
@requires("trigger")
@audited("batch.cancel")
async def cancel_batch(request: web.Request) -> web.StreamResponse:
    batch_id = path_batch_id(request)
    pool = request.app[POOL]
    await runs.cancel_batch(pool, batch_id, change(request))
    return _json_text(await body_sql.batch_body(pool, batch_id))


@routes.post("/api/collectors/runs/job/{job_id}/cancel")
@requires("trigger")
@audited("job.cancel")
async def cancel_job(request: web.Request) -> web.StreamResponse:
    job_id = path_job_id(request)
    pool = request.app[POOL]
    await runs.cancel_job(pool, job_id, change(request))
    return _json_text(await body_sql.job_body(pool, job_id))


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
    return _json_text(await body_sql.job_body(pool, job_id))


def _json_text(body: bytes | None) -> web.Response:
    """A batch's or job's GET body as PostgreSQL built it (body_sql.py), the same bytes the
    GET and live push send."""
    assert body is not None, "the object was there a statement ago, and runs are never deleted by a change"
    return web.Response(body=body, content_type="application/json")
