"""Re-running a batch or a job (server/runs/rerun.py): a new batch, 201, shaped like
``POST /api/collectors/run``."""

from __future__ import annotations

from aiohttp import web

from collectors.contract import RERUN_SCOPES
from server.api.roles import requires
from server.api.validation import path_batch_id, path_job_id, read_json_object, reject_unknown_fields
from server.audit.actions import audited, change
from server.errors import ValidationError
from server.keys import POOL, REGISTRY
from server.runs import representation as rep
from server.runs import rerun

routes = web.RouteTableDef()

DEFAULT_RERUN_SCOPE = "all"


@routes.post("/api/collectors/runs/batch/{batch_id}/rerun")
@requires("trigger")
@audited("batch.rerun")
async def rerun_batch(request: web.Request) -> web.Response:
    """``{"only": "failed"}`` re-runs the failed and cancelled jobs, ``{"only": "all"}`` (or
    no body) every job."""
    batch_id = path_batch_id(request)
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, ("only",))
    only = body.get("only", DEFAULT_RERUN_SCOPE)
    if only not in RERUN_SCOPES:
        raise ValidationError(f"only must be one of {', '.join(RERUN_SCOPES)}")
    registry = request.app[REGISTRY]
    created = await rerun.rerun_batch(request.app[POOL], batch_id, only, registry, change(request))
    return web.json_response(rep.created_batch_json(*created), status=201)


@routes.post("/api/collectors/runs/job/{job_id}/rerun")
@requires("trigger")
@audited("job.rerun")
async def rerun_job(request: web.Request) -> web.Response:
    job_id = path_job_id(request)
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, ())
    registry = request.app[REGISTRY]
    created = await rerun.rerun_job(request.app[POOL], job_id, registry, change(request))
    return web.json_response(rep.created_batch_json(*created), status=201)
