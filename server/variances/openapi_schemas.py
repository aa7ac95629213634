"""The schemas of the variances' part of the OpenAPI document (openapi.py holds the paths)."""

from __future__ import annotations

from collectors.inventory_records import SOURCES
from collectors.variance_settings import VARIANCE_STATUSES, VARIANCE_TYPES
from server.openapi.components import Names, Schema, closed_object, nullable, ref
from server.variances.exception_routes import MAX_SEARCH_LIMIT
from server.variances.openapi_requests import DAY, MAPPING_PAIR, request_schemas
from server.variances.representation import DASHBOARD_KEYS

COUNT = {"type": "integer", "minimum": 0}
TEXT = {"type": "string"}


def _by_type(schema: Schema) -> Schema:
    return closed_object({t: schema for t in VARIANCE_TYPES})


def _counts() -> Schema:
    return closed_object({"total": COUNT, "unresolved": COUNT, "resolved": COUNT})


def variance_schemas(names: Names) -> dict[str, Schema]:
    timestamp = ref("Timestamp")
    entry = {
        "type": "object",
        "required": ["id", "hostname", "vendor", "display_name", "organization", "billing_status", "action"],
        "properties": {
            "id": ref("ExceptionId"),
            "hostname": TEXT,
            "vendor": {"type": "string", "enum": ["Ninja", "ThreatLocker"]},
            "display_name": nullable(TEXT),
            "organization": TEXT,
            "billing_status": nullable(TEXT),
            "action": TEXT,
            "variance_status": ref("VarianceStatus"),
        },
    }
    block = closed_object(
        {
            "total_count": COUNT,
            "by_organization": {"type": "object", "additionalProperties": {"type": "array", "items": entry}},
        }
    )
    item = closed_object(
        {
            "id": ref("ExceptionId"),
            "hostname": TEXT,
            "organization": nullable(TEXT),
            "details": {"type": "object"},
            "resolved": {"type": "boolean"},
            "variance_status": ref("VarianceStatus"),
        }
    )
    summary = closed_object({"total_exceptions": COUNT, "unresolved_count": COUNT, "resolved_count": COUNT})
    data_status = closed_object(
        {
            "status": {"type": "string", "enum": ["current", "stale_data", "out_of_sync", "historical"]},
            "message": TEXT,
            "latest_date": nullable(DAY),
        }
    )
    collection = closed_object(
        {
            "last_collection": nullable(timestamp),
            "ninja_collected": nullable(timestamp),
            "threatlocker_collected": nullable(timestamp),
            "data_freshness": {"type": "string", "enum": ["current", "stale", "historical"]},
        }
    )
    report = {
        "report_date": DAY,
        "summary": summary,
        "exceptions_by_type": _by_type({"type": "array", "items": item}),
        "exception_counts": _by_type(COUNT),
        "collection_info": collection,
    }
    blocks = {key: block for key in DASHBOARD_KEYS.values()}
    freshness = closed_object(
        {
            "latest_date": nullable(DAY),
            "freshness_status": {"type": "string", "enum": ["current", "yesterday", "stale", "very_stale", "no_data"]},
            "freshness_message": TEXT,
            "days_old": nullable(COUNT),
        }
    )
    vendors = {"Ninja": COUNT, "ThreatLocker": COUNT}
    failure = closed_object(
        {
            "collector": TEXT,
            "job_name": TEXT,
            "status": TEXT,
            "message": nullable(TEXT),
            "error": nullable(TEXT),
            "started_at": nullable(timestamp),
            "ended_at": nullable(timestamp),
        }
    )
    exception = closed_object(
        {
            "id": ref("ExceptionId"),
            "date_found": DAY,
            "type": ref("VarianceType"),
            "hostname": TEXT,
            "subject_key": TEXT,
            "organization": nullable(TEXT),
            "details": {"type": "object"},
            "resolved": {"type": "boolean"},
            "variance_status": ref("VarianceStatus"),
            "first_seen": timestamp,
            "last_seen": timestamp,
            "note": nullable(TEXT),
            "reason": nullable(TEXT),
            "expires_on": nullable(DAY),
            "resolved_date": nullable(DAY),
            "resolved_by": nullable(TEXT),
            "manually_updated_at": nullable(timestamp),
            "manually_updated_by": nullable(TEXT),
            "update_type": nullable(TEXT),
            "old_value": {},
            "new_value": {},
            "updated_by": nullable(TEXT),
            "updated_at": nullable(timestamp),
        }
    )
    change_result = {
        "success": {"type": "boolean"},
        "message": TEXT,
        "exception_id": ref("ExceptionId"),
        "hostname": TEXT,
        "type": ref("VarianceType"),
        "variance_status": ref("VarianceStatus"),
        "updated_by": nullable(TEXT),
        "updated_at": nullable(timestamp),
    }
    by_hostname = {
        "success": {"type": "boolean"},
        "message": TEXT,
        "hostname": TEXT,
        "type": ref("VarianceType"),
        "status": {"type": "string", "enum": ["updated", "already_resolved", "not_found"]},
        "updated_at": timestamp,
        "exceptions_updated": COUNT,
        "updated_by": TEXT,
        "last_updated_by": nullable(TEXT),
        "last_updated_at": nullable(timestamp),
    }
    device = closed_object(
        {
            "vendor": {"type": "string", "enum": list(SOURCES)},
            "hostname": nullable(TEXT),
            "display_name": nullable(TEXT),
            "organization_name": nullable(TEXT),
            "snapshot_date": DAY,
            "canonical_key": nullable(TEXT),
            "is_truncated": {"type": "boolean"},
        }
    )
    return {
        "VarianceType": {"type": "string", "enum": list(VARIANCE_TYPES)},
        "VarianceStatus": {"type": "string", "enum": list(VARIANCE_STATUSES)},
        "ExceptionId": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999},
        "Exception": exception,
        "ExceptionList": {"type": "array", "items": ref("Exception")},
        "VarianceServiceStatus": closed_object(
            {
                "data_status": data_status,
                "device_counts": closed_object(vendors),
                "vendor_status": closed_object({"Ninja": freshness, "ThreatLocker": freshness}),
                "collector_health": closed_object(
                    {
                        "recent_failures": {"type": "array", "items": failure},
                        "has_recent_failures": {"type": "boolean"},
                        "total_failures_last_24h": COUNT,
                    }
                ),
                "warnings": {"type": "array", "items": TEXT},
                "has_warnings": {"type": "boolean"},
                "exception_counts": _by_type(COUNT),
                "total_exceptions": COUNT,
            }
        ),
        "VarianceReportLatest": closed_object({**report, "data_status": data_status, **blocks}),
        "VarianceReportOnDay": closed_object(report),
        "VarianceReportHistorical": closed_object(
            {**report, "device_counts": closed_object(vendors), "data_status": data_status, **blocks}
        ),
        "VarianceReportFiltered": {
            "type": "object",
            "required": [
                "analysis_date",
                "total_devices",
                "total_variances",
                "data_status",
                "status",
                "threatlocker_duplicates",
                "actionable_insights",
                "collection_info",
                "data_quality",
            ],
            "properties": {
                "analysis_date": DAY,
                "total_devices": closed_object({"ninja": COUNT, "threatlocker": COUNT}),
                "total_variances": COUNT,
                "data_status": data_status,
                "status": TEXT,
                "threatlocker_duplicates": closed_object(
                    {"total_count": COUNT, "devices": {"type": "array", "items": entry}}
                ),
                "actionable_insights": closed_object(
                    {
                        "priority_actions": {
                            "type": "array",
                            "items": closed_object({"type": ref("VarianceType"), "count": COUNT, "action": TEXT}),
                        },
                        "summary": _by_type(COUNT),
                    }
                ),
                "collection_info": collection,
                "data_quality": closed_object(
                    {
                        "total_exceptions": COUNT,
                        "exception_types": {"type": "array", "items": ref("VarianceType")},
                        "organizations_affected": COUNT,
                    }
                ),
            },
            "additionalProperties": block,
        },
        "AvailableDates": closed_object(
            {
                "available_dates": {
                    "type": "array",
                    "items": closed_object(
                        {
                            "date": DAY,
                            "ninja_devices": COUNT,
                            "threatlocker_devices": COUNT,
                            "total_exceptions": COUNT,
                            "unresolved_exceptions": COUNT,
                            "data_quality": {"type": "string", "enum": ["current", "recent", "stale"]},
                            "days_old": COUNT,
                        }
                    ),
                },
                "date_range": closed_object({"earliest": nullable(DAY), "latest": nullable(DAY)}),
                "total_dates": COUNT,
            }
        ),
        "VarianceTrends": closed_object(
            {
                "trends_by_date": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "additionalProperties": _counts()},
                },
                "trends_by_type": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "array",
                        "items": closed_object({"date": DAY, "total": COUNT, "unresolved": COUNT, "resolved": COUNT}),
                    },
                },
                "summary": closed_object(
                    {
                        "total_exceptions": COUNT,
                        "total_unresolved": COUNT,
                        "total_resolved": COUNT,
                        "date_range": closed_object({"start": DAY, "end": DAY}),
                        "unique_dates": COUNT,
                        "unique_types": {"type": "array", "items": ref("VarianceType")},
                    }
                ),
                "date_range": closed_object({"start_date": DAY, "end_date": DAY, "days": COUNT}),
                "generated_at": timestamp,
            }
        ),
        "ExceptionCount": closed_object(
            {"success": {"type": "boolean"}, "type": ref("VarianceType"), "unresolved_count": COUNT, "date": DAY}
        ),
        "ExceptionStatusSummary": closed_object(
            {
                "status_summary": closed_object(
                    {s: {"type": "object", "additionalProperties": _counts()} for s in VARIANCE_STATUSES}
                ),
                "recent_manual_updates": {
                    "type": "array",
                    "items": closed_object(
                        {
                            "exception_id": ref("ExceptionId"),
                            "type": ref("VarianceType"),
                            "hostname": TEXT,
                            "changed_at": timestamp,
                            "changed_by": TEXT,
                            "from_status": ref("VarianceStatus"),
                            "to_status": ref("VarianceStatus"),
                            "note": nullable(TEXT),
                        }
                    ),
                },
                "generated_at": timestamp,
            }
        ),
        "ExceptionHistory": closed_object(
            {
                "exception_id": ref("ExceptionId"),
                "history": {
                    "type": "array",
                    "items": closed_object(
                        {
                            "seq": {"type": "integer", "minimum": 1},
                            "changed_at": timestamp,
                            "changed_by": TEXT,
                            "from_status": nullable(ref("VarianceStatus")),
                            "to_status": ref("VarianceStatus"),
                            "note": nullable(TEXT),
                            "check_id": nullable({"type": "integer", "minimum": 1}),
                        }
                    ),
                },
            }
        ),
        "ExceptionChanged": closed_object(change_result),
        "ExceptionsByHostname": closed_object(
            by_hostname, optional=("exceptions_updated", "updated_by", "last_updated_by", "last_updated_at")
        ),
        "BulkUpdateResult": closed_object(
            {
                "success": {"type": "boolean"},
                "message": TEXT,
                "updated_count": COUNT,
                "exception_ids": {"type": "array", "items": ref("ExceptionId")},
                "updated_by": TEXT,
            }
        ),
        "DeviceSearch": closed_object(
            {
                "search_term": TEXT,
                "total_results": {**COUNT, "maximum": MAX_SEARCH_LIMIT},
                "vendors_found": {"type": "array", "items": {"type": "string", "enum": list(SOURCES)}},
                "truncated_hostnames": COUNT,
                "grouped_by_canonical_key": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": device},
                },
                "warning": nullable(TEXT),
            }
        ),
        "OrganizationMap": closed_object(
            {
                "mappings": {
                    "type": "array",
                    "items": closed_object({**MAPPING_PAIR, "updated_by": TEXT, "updated_at": timestamp}),
                }
            }
        ),
        **request_schemas(),
    }
