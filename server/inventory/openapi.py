"""The inventory paths of the OpenAPI document: devices, one device, the summary."""

from __future__ import annotations

from collectors.inventory_records import MAX_ADDRESSES, MAX_TEXT_CHARS, PLATFORMS, SOURCES
from server.inventory.routes import (
    DEFAULT_LIMIT,
    MAX_CURSOR_CHARS,
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    REMOVED_VALUES,
    VENDOR_ID,
)
from server.inventory.store import COVERAGE_SAMPLE
from server.openapi.components import (
    NO_NUL,
    SERVER_ERROR,
    Names,
    Part,
    Schema,
    closed_object,
    error,
    json_response,
    nullable,
    operation,
    ref,
)

READ = "Needs the read role; rate-limited like the other reads."


def inventory_schemas(names: Names) -> dict[str, Schema]:
    text = {"type": "string", "maxLength": MAX_TEXT_CHARS}
    count = {"type": "integer", "minimum": 0}
    addresses = {"type": "array", "maxItems": MAX_ADDRESSES, "items": text}
    device: dict[str, Schema] = {
        "source": ref("InventorySource"),
        "id": {**ref("VendorDeviceId"), "description": "The vendor's id of the device."},
        "organization": closed_object({"id": nullable(text), "name": nullable(text)}),
        "display_name": nullable(text),
        "host_name": nullable(text),
        "dns_name": nullable(text),
        "platform": ref("Platform"),
        "device_class": {**nullable(text), "description": "The vendor's own class (NinjaOne nodeClass)."},
        "os": nullable(text),
        "serial_number": nullable(text),
        "manufacturer": nullable(text),
        "model": nullable(text),
        "ip_addresses": addresses,
        "mac_addresses": addresses,
        "online": {"type": ["boolean", "null"]},
        "last_contact_at": nullable(ref("Timestamp")),
        "first_seen_at": ref("Timestamp"),
        "last_seen_at": ref("Timestamp"),
        "last_seen_job_id": ref("JobId"),
        "removed_at": {
            **nullable(ref("Timestamp")),
            "description": "When a complete, successful run of the source no longer saw the device.",
        },
    }
    run = closed_object(
        {
            "job_id": ref("JobId"),
            "batch_id": nullable(ref("BatchId")),
            "started_at": ref("Timestamp"),
            "finished_at": ref("Timestamp"),
            "devices_seen": count,
            "devices_new": count,
            "devices_gone": count,
        }
    )
    return {
        "InventorySource": {"type": "string", "enum": list(SOURCES)},
        "Platform": {"type": "string", "enum": list(PLATFORMS)},
        "VendorDeviceId": {"type": "string", "pattern": VENDOR_ID.pattern},
        "Device": closed_object(device),
        "DeviceWithRecord": closed_object(
            {**device, "raw": {"type": "object", "description": "The vendor's record, as it sent it."}}
        ),
        "DeviceList": closed_object(
            {
                "devices": {"type": "array", "maxItems": MAX_LIMIT, "items": ref("Device")},
                "next_cursor": {
                    **nullable({"type": "string", "maxLength": MAX_CURSOR_CHARS}),
                    "description": "Pass as cursor for the next page; null on the last page.",
                },
            }
        ),
        "InventorySummary": closed_object(
            {
                "sources": {
                    "type": "array",
                    "items": closed_object(
                        {
                            "source": ref("InventorySource"),
                            "devices": {**count, "description": "Devices present (not removed)."},
                            "removed": count,
                            "last_successful_run": nullable(run),
                        }
                    ),
                },
                "coverage": {
                    "type": "array",
                    "description": "For each ordered pair of sources: present devices of source whose host name"
                    " (lower case, without domain) no present device of missing_from has.",
                    "items": closed_object(
                        {
                            "source": ref("InventorySource"),
                            "missing_from": ref("InventorySource"),
                            "devices": count,
                            "sample": {"type": "array", "maxItems": COVERAGE_SAMPLE, "items": text},
                        }
                    ),
                },
                "generated_at": ref("Timestamp"),
            }
        ),
    }


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def inventory_paths(names: Names) -> dict[str, Schema]:
    list_parameters = [
        _query("source", "Only this source's devices.", ref("InventorySource")),
        _query(
            "q",
            "Case-insensitive substring of the display, host or DNS name.",
            {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": NO_NUL},
        ),
        _query("platform", "Only this platform.", ref("Platform")),
        _query(
            "removed",
            "false: present devices (default); true: removed ones; any: both.",
            {"type": "string", "enum": list(REMOVED_VALUES), "default": "false"},
        ),
        _query(
            "seen_since",
            "Only devices a run saw at or after this time (ISO 8601 with a zone).",
            {"type": "string", "format": "date-time"},
        ),
        _query(
            "missing_from",
            "Only devices whose host name this other source does not know (the coverage gap).",
            ref("InventorySource"),
        ),
        _query(
            "limit",
            "Devices per page.",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        ),
        _query(
            "cursor",
            "next_cursor of the previous page.",
            {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_CHARS},
        ),
    ]
    return {
        "/api/inventory/devices": {
            "get": operation(
                "listInventoryDevices",
                "Devices of the inventory, ordered by source and vendor id, a page at a time. " + READ,
                {
                    "200": json_response("One page of devices.", "DeviceList"),
                    "400": error("An unknown parameter, or a parameter with a bad value (say which)."),
                    "500": SERVER_ERROR,
                },
                parameters=list_parameters,
            )
        },
        "/api/inventory/devices/{source}/{device_id}": {
            "get": operation(
                "getInventoryDevice",
                "One device, with the vendor's record as it was last seen. " + READ,
                {
                    "200": json_response("The device.", "DeviceWithRecord"),
                    "400": error("Unknown source or malformed device id."),
                    "404": error("No such device in the inventory."),
                    "500": SERVER_ERROR,
                },
                parameters=[
                    {"name": "source", "in": "path", "required": True, "schema": ref("InventorySource")},
                    {"name": "device_id", "in": "path", "required": True, "schema": ref("VendorDeviceId")},
                ],
            )
        },
        "/api/inventory/summary": {
            "get": operation(
                "getInventorySummary",
                "Per source the device count and last complete run, and the coverage gap between sources. " + READ,
                {"200": json_response("The summary.", "InventorySummary"), "500": SERVER_ERROR},
            )
        },
    }


PART = Part(schemas=inventory_schemas, paths=inventory_paths)
