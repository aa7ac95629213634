"""The admin API for receivers and their deliveries. Every route needs the ``admin`` role.

Secrets appear in exactly two answers, creation and rotation, and nowhere else (not in GET,
not in logs, not in error messages)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from yarl import URL

from server.api.roles import requires
from server.api.validation import accepts_query, query_int, read_json_object, reject_unknown_fields
from server.audit.actions import audited, change
from server.errors import ValidationError
from server.keys import POOL, REGISTRY, SETTINGS
from server.webhooks import outbox, receiver_store
from server.webhooks.keys import WEBHOOK_DISPATCHER
from server.webhooks.representation import delivery_json, webhook_json, webhook_with_secret_json
from server.webhooks.rules.address_guard import resolution_problem
from server.webhooks.rules.receivers import (
    DEFAULT_EVENTS,
    EVENTS,
    check_collectors,
    check_delivery_id,
    check_description,
    check_events,
    check_flag,
    check_url,
    check_webhook_id,
)
from server.webhooks.rules.signing import new_secret

MAX_DELIVERIES = 500
DEFAULT_DELIVERIES = 50  # answered without ?limit=
routes = web.RouteTableDef()


async def _checked_url(request: web.Request, value: Any) -> str:
    allow_private = request.app[SETTINGS].webhook_allow_private
    url = check_url(value, allow_private=allow_private)
    problem = await resolution_problem(URL(url), allow_private=allow_private)
    if problem:
        raise ValidationError(problem)
    return url


@routes.post("/api/webhooks")
@requires("admin")
@audited("webhook.create")
async def create_webhook(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, ("url", "events", "collectors", "description", "variance_digest"))
    if "url" not in body:
        raise ValidationError("url is required")
    events = check_events(body["events"]) if "events" in body else list(DEFAULT_EVENTS)
    known = request.app[REGISTRY]
    collectors = check_collectors(body.get("collectors"), known)
    description = check_description(body.get("description"))
    digest = check_flag(body.get("variance_digest", False), "variance_digest")
    url = await _checked_url(request, body["url"])
    row = await receiver_store.create_webhook(
        request.app[POOL], url, events, collectors, description, new_secret(), change(request), variance_digest=digest
    )
    return web.json_response(webhook_with_secret_json(row), status=201)


@routes.get("/api/webhooks")
@requires("admin")
async def list_webhooks(request: web.Request) -> web.Response:
    rows = await receiver_store.list_webhooks(request.app[POOL])
    return web.json_response({"webhooks": [webhook_json(r) for r in rows]})


@routes.get("/api/webhooks/{webhook_id}")
@requires("admin")
async def get_webhook(request: web.Request) -> web.Response:
    webhook_id = check_webhook_id(request.match_info["webhook_id"])
    return web.json_response(webhook_json(await receiver_store.get_webhook(request.app[POOL], webhook_id)))


@routes.patch("/api/webhooks/{webhook_id}")
@requires("admin")
@audited("webhook.update")
async def update_webhook(request: web.Request) -> web.Response:
    webhook_id = check_webhook_id(request.match_info["webhook_id"])
    body = await read_json_object(request)
    fields = ("url", "events", "collectors", "description", "enabled", "variance_digest")
    reject_unknown_fields(body, fields)
    if not body:
        raise ValidationError(f"Nothing to change: send one or more of {', '.join(fields)}")
    changes: dict[str, Any] = {}
    if "events" in body:
        changes["events"] = check_events(body["events"])
    if "collectors" in body:
        known = request.app[REGISTRY]
        changes["collectors"] = check_collectors(body["collectors"], known)
    if "description" in body:
        changes["description"] = check_description(body["description"])
    if "enabled" in body:
        changes["enabled"] = check_flag(body["enabled"], "enabled")
    if "variance_digest" in body:
        changes["variance_digest"] = check_flag(body["variance_digest"], "variance_digest")
    if "url" in body:
        changes["url"] = await _checked_url(request, body["url"])
    row = await receiver_store.update_webhook(request.app[POOL], webhook_id, changes, change(request))
    if row["enabled"]:
        request.app[WEBHOOK_DISPATCHER].wake()  # held deliveries may be due
    return web.json_response(webhook_json(row))


@routes.delete("/api/webhooks/{webhook_id}")
@requires("admin")
@audited("webhook.delete")
async def delete_webhook(request: web.Request) -> web.Response:
    webhook_id = check_webhook_id(request.match_info["webhook_id"])
    await receiver_store.delete_webhook(request.app[POOL], webhook_id, change(request))
    return web.Response(status=204)


@routes.post("/api/webhooks/{webhook_id}/rotate-secret")
@requires("admin")
@audited("webhook.rotate_secret")
async def rotate_secret(request: web.Request) -> web.Response:
    webhook_id = check_webhook_id(request.match_info["webhook_id"])
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, ())
    row = await receiver_store.rotate_secret(request.app[POOL], webhook_id, new_secret(), change(request))
    return web.json_response(webhook_with_secret_json(row))


@routes.get("/api/webhooks/{webhook_id}/deliveries")
@requires("admin")
@accepts_query("limit")
async def list_deliveries(request: web.Request) -> web.Response:
    webhook_id = check_webhook_id(request.match_info["webhook_id"])
    limit = query_int(request, "limit", DEFAULT_DELIVERIES, 1, MAX_DELIVERIES)
    found = await outbox.list_deliveries(request.app[POOL], webhook_id, limit)
    return web.json_response({"deliveries": [delivery_json(d, attempts) for d, attempts in found]})


@routes.post("/api/webhooks/deliveries/{delivery_id}/redeliver")
@requires("admin")
@audited("webhook.redeliver")
async def redeliver(request: web.Request) -> web.Response:
    delivery_id = check_delivery_id(request.match_info["delivery_id"])
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, ())
    pool = request.app[POOL]
    # The answer is the delivery as queued (pending), read in the transaction that queued it,
    # not whatever a fast dispatcher has made of it a moment later.
    delivery, attempts = await outbox.redeliver(pool, delivery_id, change(request))
    request.app[WEBHOOK_DISPATCHER].wake()
    return web.json_response(delivery_json(delivery, attempts), status=202)


TEST_MESSAGE = "A test event from Collector Hub: no batch, job or collector changed."


@routes.post("/api/webhooks/{webhook_id}/test")
@requires("admin")
@audited("webhook.test")
async def send_test_event(request: web.Request) -> web.Response:
    """A delivery of ``event`` (default: the receiver's first) marked ``"test": true``, signed
    and delivered like any other, whether or not the receiver subscribes to that event."""
    webhook_id = check_webhook_id(request.match_info["webhook_id"])
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, ("event",))
    pool = request.app[POOL]
    event = body.get("event")
    if event is None:
        event = (await receiver_store.get_webhook(pool, webhook_id))["events"][0]
    elif event not in EVENTS:
        raise ValidationError(f"event must be one of: {', '.join(EVENTS)}")
    data = {"message": TEST_MESSAGE}
    delivery = await outbox.create_test_delivery(pool, webhook_id, event, data, change(request))
    request.app[WEBHOOK_DISPATCHER].wake()
    return web.json_response(delivery_json(delivery, []), status=202)
