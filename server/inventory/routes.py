"""The inventory read API: devices (filtered, cursor-paged), one device with its vendor record,
and a summary per source with the coverage gap between sources."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from collectors.inventory_records import PLATFORMS, SOURCES
from server.api.roles import requires
from server.api.timestamps import format_timestamp, utc_now
from server.api.validation import accepts_query, check_text, query_int
from server.errors import NotFoundError, ValidationError
from server.inventory import store
from server.keys import POOL

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_QUERY_CHARS = 200
MAX_CURSOR_CHARS = 400
VENDOR_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
LIST_PARAMETERS = ("source", "q", "platform", "removed", "seen_since", "missing_from", "limit", "cursor")
REMOVED_VALUES = {"false": False, "true": True, "any": None}

routes = web.RouteTableDef()


def device_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "source": row["source"],
        "id": row["vendor_id"],
        "organization": {"id": row["organization_id"], "name": row["organization_name"]},
        "display_name": row["display_name"],
        "host_name": row["host_name"],
        "dns_name": row["dns_name"],
        "platform": row["platform"],
        "device_class": row["device_class"],
        "os": row["os_name"],
        "serial_number": row["serial_number"],
        "manufacturer": row["manufacturer"],
        "model": row["model"],
        "ip_addresses": list(row["ip_addresses"]),
        "mac_addresses": list(row["mac_addresses"]),
        "online": row["online"],
        "last_contact_at": format_timestamp(row["last_contact_at"]),
        "first_seen_at": format_timestamp(row["first_seen_at"]),
        "last_seen_at": format_timestamp(row["last_seen_at"]),
        "last_seen_job_id": row["last_seen_job_id"],
        "removed_at": format_timestamp(row["removed_at"]),
    }


def encode_cursor(source: str, vendor_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([source, vendor_id]).encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[str, str]:
    invalid = ValidationError("cursor is not one this server gave out (use next_cursor from the previous page)")
    if len(raw) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not (isinstance(value, list) and len(value) == 2 and value[0] in SOURCES and isinstance(value[1], str)):
        raise invalid
    if not VENDOR_ID.fullmatch(value[1]):
        raise invalid
    return value[0], value[1]


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in allowed:
        raise ValidationError(f"{name} must be one of {', '.join(allowed)}")
    return raw


def _timestamp(request: web.Request, name: str) -> dt.datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ValidationError(f"{name} must be an ISO 8601 timestamp with a time zone, e.g. 2026-11-29T10:00:00Z")
    return value


def device_filter(request: web.Request) -> store.DeviceFilter:
    """(Unknown parameters never get here: ``accepts_query`` on the route, one check for all.)"""
    source = _choice(request, "source", SOURCES)
    missing_from = _choice(request, "missing_from", SOURCES)
    if missing_from is not None and missing_from == source:
        raise ValidationError("missing_from must name a different source than source")
    q = check_text("q", request.query.get("q"), MAX_QUERY_CHARS)
    if q is not None and not q.strip():
        raise ValidationError("q must not be empty")
    removed_raw = request.query.get("removed", "false")
    if removed_raw not in REMOVED_VALUES:
        raise ValidationError("removed must be false (present devices, the default), true (removed ones) or any")
    cursor = request.query.get("cursor")
    return store.DeviceFilter(
        source=source,
        q=q.strip() if q is not None else None,
        platform=_choice(request, "platform", PLATFORMS),
        removed=REMOVED_VALUES[removed_raw],
        seen_since=_timestamp(request, "seen_since"),
        missing_from=missing_from,
        after=decode_cursor(cursor) if cursor is not None else None,
    )


@routes.get("/api/inventory/devices")
@requires("read")
@accepts_query(*LIST_PARAMETERS)
async def list_devices(request: web.Request) -> web.Response:
    flt = device_filter(request)
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    rows, more = await store.list_devices(request.app[POOL], flt, limit)
    next_cursor = encode_cursor(rows[-1]["source"], rows[-1]["vendor_id"]) if more and rows else None
    return web.json_response({"devices": [device_json(r) for r in rows], "next_cursor": next_cursor})


@routes.get("/api/inventory/devices/{source}/{device_id}")
@requires("read")
async def get_device(request: web.Request) -> web.Response:
    source = request.match_info["source"]
    if source not in SOURCES:
        raise ValidationError(f"Unknown inventory source {source[:40]!r}; sources: {', '.join(SOURCES)}")
    vendor_id = request.match_info["device_id"]
    if not VENDOR_ID.fullmatch(vendor_id):
        raise ValidationError("Malformed device id: 1-100 letters, digits, '.', '_', ':' or '-'")
    row = await store.get_device(request.app[POOL], source, vendor_id)
    if row is None:
        raise NotFoundError("Device not found")
    body = device_json(row)
    body["raw"] = json.loads(row["raw"])
    return web.json_response(body)


def _run_json(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "job_id": row["job_id"],
        "batch_id": row["batch_id"],
        "started_at": format_timestamp(row["started_at"]),
        "finished_at": format_timestamp(row["finished_at"]),
        "devices_seen": row["devices_seen"],
        "devices_new": row["devices_new"],
        "devices_gone": row["devices_gone"],
    }


@routes.get("/api/inventory/summary")
@requires("read")
async def get_summary(request: web.Request) -> web.Response:
    found = await store.summary(request.app[POOL])
    sources = []
    for source in SOURCES:
        counts = found["counts"].get(source)
        sources.append(
            {
                "source": source,
                "devices": int(counts["devices"]) if counts else 0,
                "removed": int(counts["removed"]) if counts else 0,
                "last_successful_run": _run_json(found["last_runs"].get(source)),
            }
        )
    return web.json_response({"sources": sources, "coverage": found["coverage"], "generated_at": utc_now()})
