"""``/api/schedules``: list and read with the ``read`` role; create, change, delete and run
now with ``admin``. Every answer about a schedule is the full schedule (representation.py)."""

from __future__ import annotations

from aiohttp import web

from server.api.roles import requires
from server.api.validation import read_json_object, reject_unknown_fields
from server.audit.actions import audited, change
from server.keys import POOL, REGISTRY
from server.runs.representation import created_batch_json
from server.schedules import store
from server.schedules.definition import changes_from, check_schedule_id, definition_from
from server.schedules.keys import SCHEDULE_CLOCK
from server.schedules.representation import schedule_json

routes = web.RouteTableDef()


async def _answer(request: web.Request, schedule_id: str, status: int = 200) -> web.Response:
    row = await store.get_schedule(request.app[POOL], schedule_id)
    return web.json_response(schedule_json(row), status=status)


@routes.get("/api/schedules")
@requires("read")
async def list_schedules(request: web.Request) -> web.Response:
    rows = await store.list_schedules(request.app[POOL])
    return web.json_response({"schedules": [schedule_json(row) for row in rows]})


@routes.post("/api/schedules")
@requires("admin")
@audited("schedule.create")
async def create_schedule(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    registry = request.app[REGISTRY]
    definition = definition_from(body, registry)
    now = request.app[SCHEDULE_CLOCK]()
    schedule_id = await store.create_schedule(request.app[POOL], definition, now, change(request))
    return await _answer(request, schedule_id, status=201)


@routes.get("/api/schedules/{schedule_id}")
@requires("read")
async def get_schedule(request: web.Request) -> web.Response:
    return await _answer(request, check_schedule_id(request.match_info["schedule_id"]))


@routes.patch("/api/schedules/{schedule_id}")
@requires("admin")
@audited("schedule.update")
async def update_schedule(request: web.Request) -> web.Response:
    schedule_id = check_schedule_id(request.match_info["schedule_id"])
    body = await read_json_object(request)
    registry = request.app[REGISTRY]
    changes = changes_from(body, registry)
    action = None
    if set(changes) == {"enabled"}:
        action = "schedule.resume" if changes["enabled"] else "schedule.pause"
    clock = request.app[SCHEDULE_CLOCK]
    await store.update_schedule(request.app[POOL], schedule_id, changes, clock(), change(request, action))
    return await _answer(request, schedule_id)


@routes.delete("/api/schedules/{schedule_id}")
@requires("admin")
@audited("schedule.delete")
async def delete_schedule(request: web.Request) -> web.Response:
    schedule_id = check_schedule_id(request.match_info["schedule_id"])
    await store.delete_schedule(request.app[POOL], schedule_id, change(request))
    return web.Response(status=204)


@routes.post("/api/schedules/{schedule_id}/trigger")
@requires("admin")
@audited("schedule.run_now")
async def trigger_schedule(request: web.Request) -> web.Response:
    """Run now: a batch that records the schedule (no due time); overlap ``skip`` holds."""
    schedule_id = check_schedule_id(request.match_info["schedule_id"])
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, ())
    registry = request.app[REGISTRY]
    created = await store.trigger_schedule(request.app[POOL], schedule_id, registry, change(request))
    return web.json_response(created_batch_json(*created), status=201)
