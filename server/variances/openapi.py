"""The variances' part of the OpenAPI document: the paths (the schemas are in openapi_schemas.py;
server/service/openapi_document.py merges both in)."""

from __future__ import annotations

from typing import Any

from collectors.inventory_records import SOURCES
from server.openapi.components import (
    BAD_BODY,
    NO_NUL,
    SERVER_ERROR,
    Names,
    Part,
    Schema,
    error,
    json_response,
    operation,
    path_id,
    query,
    ref,
)
from server.realtime.openapi import SSE_RESUME
from server.variances.exception_routes import (
    DEFAULT_LIMIT,
    DEFAULT_SEARCH_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_SEARCH_LIMIT,
    NEXT_CURSOR_HEADER,
)
from server.variances.export_routes import XLSX
from server.variances.openapi_requests import DAY, NOT_BLANK
from server.variances.openapi_schemas import variance_schemas
from server.variances.params import MAX_HOSTNAME, MAX_TEXT
from server.variances.report_routes import MAX_TREND_DAYS

READ = " Needs the read role."
TRIGGER = " Needs the trigger role; the change, its note and the caller are recorded in the variance's history."
FLAG = {"type": "string", "enum": ["true", "false"]}
NO_CHECK = error("No complete cross-vendor check has run yet (out_of_sync), or none by the end of that day.")


def _types(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " Comma-separated.",
        "style": "form",
        "explode": False,
        "schema": {"type": "array", "minItems": 1, "items": ref("VarianceType")},
    }


def _get(operation_id: str, summary: str, schema: str, *extra_errors: tuple[str, str], **more: Any) -> Schema:
    responses: dict[str, Schema] = {"200": json_response("The answer.", schema), "500": SERVER_ERROR}
    for status, text in extra_errors:
        responses[status] = error(text)
    return {"get": operation(operation_id, summary + READ, responses, **more)}


def _post(
    operation_id: str, summary: str, schema: str, body: str, *, required: bool, parameters: Any = (), **extra: Schema
) -> Schema:
    responses: dict[str, Schema] = {
        "200": json_response("Done (or nothing to do: the message says so).", schema),
        **BAD_BODY,
        "404": error("No exception with that id (the message lists the unknown ids)."),
        "500": SERVER_ERROR,
        **extra,
    }
    request = {"required": required, "content": {"application/json": {"schema": ref(body)}}}
    more = {"parameters": list(parameters)} if parameters else {}
    return {"post": operation(operation_id, summary + TRIGGER, responses, requestBody=request, **more)}


def variance_paths(names: Names) -> dict[str, Schema]:
    include_resolved = query("include_resolved", FLAG, "Also the variances no longer open (default false).")
    date = {"name": "date", "in": "path", "required": True, "description": "A UTC day.", "schema": DAY}
    day_errors = (("400", "The date is not YYYY-MM-DD."), ("404", NO_CHECK["description"] + " Or a future day."))
    exception_id = path_id("exception_id", "ExceptionId")
    status = {
        "name": "status",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "schema": {"type": "array", "minItems": 1, "items": ref("VarianceStatus")},
    }
    organization = query(
        "organization",
        {"type": "string", "maxLength": MAX_TEXT, "pattern": NO_NUL},
        "The organization's name (any case).",
    )
    text = query(
        "q",
        {"type": "string", "maxLength": MAX_HOSTNAME, "pattern": NO_NUL},
        "A substring of the host name, key or organization.",
    )
    export_parameters = [
        query("date", {"anyOf": [{"type": "string", "const": "latest"}, DAY]}, "latest (default) or a UTC day."),
        query("include_resolved", FLAG, "Also the variances no longer open (default false; a status decides instead)."),
        _types("variance_type", "Only these types."),
        _types("type", "Only these types (when variance_type is not given)."),
        {**status, "description": "Only these statuses (on that day, for a past one), whatever include_resolved says."},
        organization,
        text,
    ]
    export_errors = {
        "400": error("A bad value of a parameter, or an unknown parameter."),
        "404": NO_CHECK,
        "500": SERVER_ERROR,
    }
    return {
        "/api/status": _get(
            "getVarianceStatus",
            "Data freshness per source, recent collector failures, open variances.",
            "VarianceServiceStatus",
        ),
        "/api/variance-report/latest": _get(
            "getLatestVarianceReport",
            "The variances as they stand, by type and in the dashboard's blocks.",
            "VarianceReportLatest",
            ("404", NO_CHECK["description"]),
            parameters=[include_resolved],
        ),
        "/api/variance-report/filtered": _get(
            "getFilteredVarianceReport",
            "The open variances, with what to do about each type.",
            "VarianceReportFiltered",
            ("404", NO_CHECK["description"]),
        ),
        "/api/variance-report/{date}": _get(
            "getVarianceReportOnDay",
            "The variances open at the end of a day (from their history).",
            "VarianceReportOnDay",
            *day_errors,
            parameters=[date, include_resolved],
        ),
        "/api/variances/historical/{date}": _get(
            "getHistoricalVariances",
            "A day's variances with the device counts of that day's check.",
            "VarianceReportHistorical",
            *day_errors,
            parameters=[date, include_resolved],
        ),
        "/api/variances/available-dates": _get(
            "getVarianceDates",
            "The days of the last 30 with a complete check.",
            "AvailableDates",
        ),
        "/api/variances/trends": _get(
            "getVarianceTrends",
            f"Per day and type: variances on the day's list and how many were open (at most {MAX_TREND_DAYS} days).",
            "VarianceTrends",
            ("400", "start_date or end_date missing or not YYYY-MM-DD, start after end, or too long a range."),
            parameters=[
                {"name": "start_date", "in": "query", "required": True, "schema": DAY},
                {"name": "end_date", "in": "query", "required": True, "schema": DAY},
                query("type", ref("VarianceType"), "Only this type."),
            ],
        ),
        "/api/exceptions": {
            "get": operation(
                "listExceptions",
                "Variances, newest first: a bare array (as ES Inventory Hub answers); the next page's cursor is"
                f" the {NEXT_CURSOR_HEADER} header." + READ,
                {
                    "200": {
                        **json_response("One page.", "ExceptionList"),
                        "headers": {
                            NEXT_CURSOR_HEADER: {
                                "description": "Absent on the last page.",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "500": SERVER_ERROR,
                },
                parameters=[
                    _types("type", "Only these types."),
                    status,
                    query("resolved", FLAG, "true: every status but active; false: active only."),
                    organization,
                    text,
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                        "Variances per page.",
                    ),
                    query(
                        "offset",
                        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
                        "Skip this many (not with cursor).",
                    ),
                    query(
                        "cursor",
                        {"type": "string", "minLength": 1, "maxLength": 40},
                        f"The {NEXT_CURSOR_HEADER} of the previous page.",
                    ),
                ],
            )
        },
        "/api/exceptions/count": _get(
            "countExceptions",
            "How many variances of a type are open.",
            "ExceptionCount",
            parameters=[query("type", ref("VarianceType"), "Default DISPLAY_NAME_MISMATCH.")],
        ),
        "/api/exceptions/status-summary": _get(
            "getExceptionStatusSummary",
            "Counts per status and type, and the latest changes people made.",
            "ExceptionStatusSummary",
        ),
        "/api/exceptions/{exception_id}/history": _get(
            "getExceptionHistory",
            "Every change of one variance, oldest first: found, each check's and each operator's change.",
            "ExceptionHistory",
            ("400", "The id is not a positive integer."),
            ("404", "No exception with that id."),
            parameters=[exception_id],
        ),
        "/api/exceptions/{exception_id}/resolve": _post(
            "resolveException",
            "Resolve a variance.",
            "ExceptionChanged",
            "ResolveRequest",
            required=False,
            parameters=[exception_id],
        ),
        "/api/exceptions/{exception_id}/mark-manually-fixed": _post(
            "markExceptionFixed",
            "Say a variance is fixed; the next complete check confirms it or reopens it.",
            "ExceptionChanged",
            "ManualFixRequest",
            required=False,
            parameters=[exception_id],
        ),
        "/api/exceptions/mark-fixed-by-hostname": _post(
            "markExceptionFixedByHostname",
            "Mark a host's variance of a type fixed (the host name is matched through the canonical host key).",
            "ExceptionsByHostname",
            "FixByHostnameRequest",
            required=True,
            **{"404": json_response("No variance of that type for that host.", "ExceptionsByHostname")},
        ),
        "/api/exceptions/bulk-update": _post(
            "bulkUpdateExceptions",
            "Apply one action to many variances (all or none when an id is unknown).",
            "BulkUpdateResult",
            "BulkUpdateRequest",
            required=True,
        ),
        "/api/devices/search": _get(
            "searchDevices",
            "Present devices by host name, grouped by canonical host key.",
            "DeviceSearch",
            ("400", "q is missing or blank, or vendor is unknown."),
            parameters=[
                {
                    "name": "q",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "maxLength": MAX_HOSTNAME, "pattern": NOT_BLANK},
                },
                query("vendor", {"type": "string", "enum": list(SOURCES)}, "Only this source."),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT, "default": DEFAULT_SEARCH_LIMIT},
                    "At most this many devices.",
                ),
            ],
        ),
        "/api/variances/organization-map": {
            **_get("getOrganizationMap", "Which NinjaOne organization each ThreatLocker one is.", "OrganizationMap"),
            "put": operation(
                "putOrganizationMap",
                "Replace the organization map; the next check reads it. Needs the trigger role.",
                {"200": json_response("The map.", "OrganizationMap"), **BAD_BODY, "500": SERVER_ERROR},
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": ref("OrganizationMapRequest")}},
                },
            ),
        },
        "/api/variances/events": {
            "get": operation(
                "streamVarianceChanges",
                "Server-Sent Events: the variances' changes, from the resume seq (or from now), live." + READ,
                {
                    "200": {
                        "description": "Each page: an 'event: counts' (the open counts), then per change 'id: <seq>',"
                        " 'event: variance', 'data: <a VarianceChange>'. The stream does not end.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": error("A resume seq that is not a number, or an unknown query parameter."),
                    "500": SERVER_ERROR,
                    "503": error("The server is shutting down; reconnect (to another node)."),
                },
                parameters=SSE_RESUME,
            )
        },
        "/api/variances/export/csv": {
            "get": operation(
                "exportVariancesCsv",
                "The variances as CSV (docs/VARIANCES.md lists the columns)." + READ,
                {
                    "200": {"description": "The file.", "content": {"text/csv": {"schema": {"type": "string"}}}},
                    **export_errors,
                },
                parameters=export_parameters,
            )
        },
        "/api/variances/export/excel": {
            "get": operation(
                "exportVariancesExcel",
                "The variances as an XLSX workbook: Summary and Exceptions sheets." + READ,
                {
                    "200": {"description": "The file.", "content": {XLSX: {"schema": {"type": "string"}}}},
                    **export_errors,
                },
                parameters=export_parameters,
            )
        },
    }


PART = Part(schemas=variance_schemas, paths=variance_paths)
