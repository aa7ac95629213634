"""The variances one by one: list and count them, search the devices (read role); resolve, mark
fixed, accept, reopen, and edit the organization map (trigger role). Every change records the
caller and its note in the variance's history (store.apply_change)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from aiohttp import web

from collectors.inventory_records import SOURCES
from collectors.variance_settings import OPEN_STATUS, VARIANCE_STATUSES
from server.api.roles import requires
from server.api.timestamps import format_timestamp, utc_now
from server.api.validation import accepts_query, check_text, query_int, read_json_object, reject_unknown_fields
from server.audit.actions import audited
from server.audit.actions import change as audit_entry
from server.errors import NotFoundError, ValidationError
from server.keys import POOL, SETTINGS
from server.variances import store
from server.variances.params import (
    MAX_HOSTNAME,
    MAX_TEXT,
    caller,
    check_type,
    parse_date,
    path_id,
    query_bool,
    query_statuses,
    query_types,
    today,
)
from server.variances.representation import exception_json

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000
MAX_IDS = 1000
# Organizations whose names agree need no mapping; this many fit within the request body limit.
MAX_MAPPINGS = 100
MAX_ORGANIZATION = 200
DEFAULT_SEARCH_LIMIT = 50
MAX_SEARCH_LIMIT = 200
NETBIOS_CHARS = 15
LIST_PARAMETERS = ("type", "status", "resolved", "organization", "q", "limit", "offset", "cursor")
BULK_ACTIONS = ("mark_manually_fixed", "resolve", "reset_status", "accept", "reopen")
MANUAL_FIELDS = ("updated_by", "update_type", "old_value", "new_value", "notes")
NEXT_CURSOR_HEADER = "X-Next-Cursor"

routes = web.RouteTableDef()


def encode_cursor(variance_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{variance_id}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> int:
    invalid = ValidationError("cursor is not one this server gave out (use the X-Next-Cursor of the previous page)")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(raw) > 40 or not text.startswith("v1:") or not text[3:].isdigit():
        raise invalid
    return int(text[3:])


@routes.get("/api/exceptions")
@requires("read")
@accepts_query(*LIST_PARAMETERS)
async def list_exceptions(request: web.Request) -> web.Response:
    """A bare array, as ES Inventory Hub answers; the next page's cursor is a header."""
    organization = check_text("organization", request.query.get("organization"), MAX_TEXT)
    q = check_text("q", request.query.get("q"), MAX_HOSTNAME)
    cursor = request.query.get("cursor")
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    if cursor is not None and offset:
        raise ValidationError("give cursor or offset, not both")
    flt = store.ExceptionFilter(
        types=query_types(request, "type"),
        statuses=query_statuses(request),
        resolved=query_bool(request, "resolved", None),
        organization=organization,
        q=q.strip() or None if q is not None else None,
        before_id=decode_cursor(cursor) if cursor is not None else None,
    )
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    rows, more = await store.list_exceptions(request.app[POOL], flt, limit, offset)
    headers = {NEXT_CURSOR_HEADER: encode_cursor(rows[-1]["id"])} if more and rows else {}
    return web.json_response([exception_json(r) for r in rows], headers=headers)


@routes.get("/api/exceptions/count")
@requires("read")
@accepts_query("type")
async def count_exceptions(request: web.Request) -> web.Response:
    variance_type = check_type(request.query.get("type", "DISPLAY_NAME_MISMATCH"))
    counts = await store.counts(request.app[POOL])
    unresolved = sum(int(r["n"]) for r in counts if r["type"] == variance_type and r["status"] == OPEN_STATUS)
    return web.json_response(
        {"success": True, "type": variance_type, "unresolved_count": unresolved, "date": today().isoformat()}
    )


@routes.get("/api/exceptions/status-summary")
@requires("read")
async def status_summary(request: web.Request) -> web.Response:
    counts = await store.counts(request.app[POOL])
    summary: dict[str, dict[str, dict[str, int]]] = {s: {} for s in VARIANCE_STATUSES}
    for row in counts:
        n = int(row["n"])
        open_n = n if row["status"] == OPEN_STATUS else 0
        summary[row["status"]][row["type"]] = {"total": n, "resolved": n - open_n, "unresolved": open_n}
    recent = await store.recent_changes(request.app[POOL])
    return web.json_response(
        {
            "status_summary": summary,
            "recent_manual_updates": [
                {
                    "exception_id": r["variance_id"],
                    "type": r["type"],
                    "hostname": r["hostname"],
                    "changed_at": format_timestamp(r["changed_at"]),
                    "changed_by": r["changed_by"],
                    "from_status": r["from_status"],
                    "to_status": r["to_status"],
                    "note": r["note"],
                }
                for r in recent
            ],
            "generated_at": utc_now(),
        }
    )


@routes.get("/api/exceptions/{exception_id}/history")
@requires("read")
async def exception_history(request: web.Request) -> web.Response:
    """Every change of one variance, oldest first: the checks' (with their check_id) and the
    operators' (with their note; an acceptance's reason and expiry are in its note)."""
    variance_id = path_id(request)
    rows = await store.variance_history(request.app[POOL], variance_id)
    if rows is None:
        raise NotFoundError(f"Exception not found: {variance_id}")
    return web.json_response(
        {
            "exception_id": variance_id,
            "history": [{**r, "changed_at": format_timestamp(r["changed_at"])} for r in rows],
        }
    )


def _json_value(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, dict | list | str | int | float | bool):
        raise ValidationError(f"{name} must be a JSON value")
    return value


def _change(request: web.Request, body: dict[str, Any], action: str) -> store.ChangeRequest:
    """The change a body asks for, checked. ``updated_by`` (as ES Inventory Hub's clients send
    it) is recorded beside the caller's identity, never instead of it."""
    named = check_text("updated_by", body.get("updated_by"), MAX_HOSTNAME)
    who = caller(request) + (f" (as {named.strip()})" if named and named.strip() else "")
    note = check_text("notes", body.get("notes"), MAX_TEXT)
    reason = check_text("reason", body.get("reason"), MAX_TEXT)
    raw_expiry = check_text("expires_on", body.get("expires_on"), 10)
    expires_on = parse_date(raw_expiry, "expires_on") if raw_expiry is not None else None
    if action == "accept":
        if reason is None or not reason.strip():
            raise ValidationError("accept needs a reason")
        if expires_on is not None and expires_on < today():
            raise ValidationError("expires_on must be today or later")
    elif reason is not None or expires_on is not None:
        raise ValidationError("reason and expires_on go with the accept action only")
    return store.ChangeRequest(
        action=action,
        who=who,
        note=note.strip() or None if note is not None else None,
        reason=reason.strip() if reason is not None else None,
        expires_on=expires_on,
        update_type=check_text("update_type", body.get("update_type"), 100),
        old_value=_json_value(body, "old_value"),
        new_value=_json_value(body, "new_value"),
    )


async def _apply(request: web.Request, ids: list[int], change: store.ChangeRequest) -> list[int]:
    unknown, changed = await store.apply_change(request.app[POOL], ids, change, audit_entry(request))
    if unknown:
        raise NotFoundError(f"Exception not found: {', '.join(map(str, unknown[:20]))}")
    return changed


@routes.post("/api/exceptions/{exception_id}/resolve")
@requires("trigger")
@audited("exception.resolve")
async def resolve(request: web.Request) -> web.Response:
    variance_id = path_id(request)
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, ("resolved_by", "notes"))
    change = _change(request, {"updated_by": body.get("resolved_by"), "notes": body.get("notes")}, "resolve")
    changed = await _apply(request, [variance_id], change)
    (row,) = await store.get_variances(request.app[POOL], [variance_id])
    message = f"Exception {variance_id} resolved" if changed else f"Exception {variance_id} was already {row['status']}"
    return web.json_response({"success": True, "message": message, "exception_id": variance_id, **_who(row)})


def _who(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "hostname": row["hostname"],
        "type": row["type"],
        "variance_status": row["status"],
        "updated_by": row["updated_by"],
        "updated_at": format_timestamp(row["updated_at"]),
    }


@routes.post("/api/exceptions/{exception_id}/mark-manually-fixed")
@requires("trigger")
@audited("exception.mark_manually_fixed")
async def mark_manually_fixed(request: web.Request) -> web.Response:
    variance_id = path_id(request)
    body = await read_json_object(request, allow_empty=True)
    reject_unknown_fields(body, MANUAL_FIELDS)
    changed = await _apply(request, [variance_id], _change(request, body, "mark_manually_fixed"))
    (row,) = await store.get_variances(request.app[POOL], [variance_id])
    message = (
        f"Exception {variance_id} marked as manually fixed; the next check confirms it"
        if changed
        else f"Exception {variance_id} is {row['status']}: nothing to fix"
    )
    return web.json_response({"success": True, "message": message, "exception_id": variance_id, **_who(row)})


@routes.post("/api/exceptions/mark-fixed-by-hostname")
@requires("trigger")
@audited("exception.mark_manually_fixed")
async def mark_fixed_by_hostname(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, ("hostname", "type", *MANUAL_FIELDS))
    hostname = check_text("hostname", body.get("hostname"), MAX_HOSTNAME)
    if hostname is None or not hostname.strip():
        raise ValidationError("Hostname is required")
    variance_type = check_type(check_text("type", body.get("type"), 40) or "DISPLAY_NAME_MISMATCH")
    change = _change(request, {"update_type": "display_name_update", **body}, "mark_manually_fixed")
    pool = request.app[POOL]
    key = await store.host_key(pool, hostname, request.app[SETTINGS].variances.netbios_cut)
    rows = await store.find_by_key(pool, key, variance_type) if key else []
    answer = {"hostname": hostname, "type": variance_type, "updated_at": utc_now()}
    if not rows:
        return web.json_response(
            {
                "success": False,
                "message": f"No {variance_type} exception for {hostname}",
                "status": "not_found",
                **answer,
            },
            status=404,
        )
    changed = await _apply(request, [r["id"] for r in rows], change)
    if not changed:
        return web.json_response(
            {
                "success": True,
                "message": f"The {variance_type} exception of {hostname} is already resolved",
                "exceptions_updated": 0,
                "status": "already_resolved",
                "last_updated_by": rows[0]["updated_by"],
                "last_updated_at": format_timestamp(rows[0]["updated_at"]),
                **answer,
            }
        )
    return web.json_response(
        {
            "success": True,
            "message": f"Marked {len(changed)} exception(s) of {hostname} as manually fixed",
            "exceptions_updated": len(changed),
            "updated_by": change.who,
            "status": "updated",
            **answer,
        }
    )


@routes.post("/api/exceptions/bulk-update")
@requires("trigger")
@audited("exception.bulk_update")
async def bulk_update(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, ("exception_ids", "action", "reason", "expires_on", *MANUAL_FIELDS))
    ids = body.get("exception_ids")
    if not isinstance(ids, list) or not ids:
        raise ValidationError("No exception IDs provided")
    if len(ids) > MAX_IDS or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**53 for i in ids):
        raise ValidationError(f"exception_ids must be 1 to {MAX_IDS} positive integers")
    action = body.get("action", "mark_manually_fixed")
    if action not in BULK_ACTIONS:
        raise ValidationError(f"Invalid action: use one of {', '.join(BULK_ACTIONS)}")
    change = _change(request, body, action)
    changed = await _apply(request, sorted(set(ids)), change)
    return web.json_response(
        {
            "success": True,
            "message": f"{action}: {len(changed)} of {len(set(ids))} exception(s) changed",
            "updated_count": len(changed),
            "exception_ids": changed,
            "updated_by": change.who,
        }
    )


@routes.get("/api/devices/search")
@requires("read")
@accepts_query("q", "vendor", "limit")
async def search_devices(request: web.Request) -> web.Response:
    q = check_text("q", request.query.get("q"), MAX_HOSTNAME)
    if q is None or not q.strip():
        raise ValidationError("q (the text to search for) is required")
    vendor = request.query.get("vendor")
    if vendor is not None and vendor not in SOURCES:
        raise ValidationError(f"vendor must be one of {', '.join(SOURCES)}")
    limit = query_int(request, "limit", DEFAULT_SEARCH_LIMIT, 1, MAX_SEARCH_LIMIT)
    cut = request.app[SETTINGS].variances.netbios_cut
    pool = request.app[POOL]
    key = await store.host_key(pool, q.strip(), cut) or q.strip().lower()
    rows = await store.search_devices(pool, key, (vendor,) if vendor else SOURCES, limit, cut)
    grouped: dict[str, list[dict[str, Any]]] = {}
    truncated = 0
    for row in rows:
        is_truncated = row["source"] == "ninja" and len(row["hostname"] or "") == NETBIOS_CHARS
        truncated += is_truncated
        grouped.setdefault(row["canonical_key"] or "", []).append(
            {
                "vendor": row["source"],
                "hostname": row["hostname"],
                "display_name": row["display_name"],
                "organization_name": row["organization_name"],
                "snapshot_date": row["last_seen_at"].astimezone(dt.UTC).date().isoformat(),
                "canonical_key": row["canonical_key"],
                "is_truncated": is_truncated,
            }
        )
    return web.json_response(
        {
            "search_term": q,
            "total_results": len(rows),
            "vendors_found": sorted({r["source"] for r in rows}),
            "truncated_hostnames": truncated,
            "grouped_by_canonical_key": grouped,
            "warning": f"Only the first {limit} devices are shown" if len(rows) == limit else None,
        }
    )


async def _organization_map(request: web.Request) -> web.Response:
    rows = await store.organization_map(request.app[POOL])
    return web.json_response({"mappings": [{**r, "updated_at": format_timestamp(r["updated_at"])} for r in rows]})


@routes.get("/api/variances/organization-map")
@requires("read")
async def get_organization_map(request: web.Request) -> web.Response:
    return await _organization_map(request)


@routes.put("/api/variances/organization-map")
@requires("trigger")
@audited("variance.organization_map")
async def put_organization_map(request: web.Request) -> web.Response:
    """Replace the map; the next check reads it."""
    body = await read_json_object(request)
    reject_unknown_fields(body, ("mappings",))
    mappings = body.get("mappings")
    if not isinstance(mappings, list) or len(mappings) > MAX_MAPPINGS:
        raise ValidationError(f"mappings must be a list of at most {MAX_MAPPINGS} objects")
    pairs = []
    for item in mappings:
        if not isinstance(item, dict):
            raise ValidationError("each mapping must be an object")
        reject_unknown_fields(item, ("ninja_organization", "threatlocker_organization"))
        pair = []
        for name in ("ninja_organization", "threatlocker_organization"):
            value = check_text(name, item.get(name), MAX_ORGANIZATION, optional=False)
            if value is None or not value.strip():
                raise ValidationError(f"{name} is required in each mapping")
            pair.append(value.strip())
        pairs.append((pair[0], pair[1]))
    await store.replace_organization_map(request.app[POOL], pairs, caller(request), audit_entry(request))
    return await _organization_map(request)
