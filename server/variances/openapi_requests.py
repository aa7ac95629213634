"""The request bodies of the variances' routes in the OpenAPI document (openapi_schemas.py holds
the answers, openapi.py the paths)."""

from __future__ import annotations

from server.openapi.components import NO_NUL, Schema, closed_object, ref
from server.variances.exception_routes import BULK_ACTIONS, MAX_IDS, MAX_MAPPINGS, MAX_ORGANIZATION
from server.variances.params import MAX_HOSTNAME, MAX_TEXT

DAY = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
# What an operator's change may say of itself (the manual-fix routes and the bulk update).
MANUAL_FIELDS: dict[str, Schema] = {
    "updated_by": {
        "type": "string",
        "maxLength": MAX_HOSTNAME,
        "pattern": NO_NUL,
        "description": "Recorded beside the caller's identity, never instead of it.",
    },
    "update_type": {"type": "string", "maxLength": 100, "pattern": NO_NUL},
    "old_value": {"description": "Any JSON value: what the operator changed."},
    "new_value": {"description": "Any JSON value: what the operator changed it to."},
    "notes": {"type": "string", "maxLength": MAX_TEXT, "pattern": NO_NUL, "description": "Kept as the note."},
}
# A NinjaOne organization and its ThreatLocker name.
MAPPING_PAIR: dict[str, Schema] = {
    "ninja_organization": {"type": "string", "maxLength": MAX_ORGANIZATION, "pattern": NOT_BLANK},
    "threatlocker_organization": {"type": "string", "maxLength": MAX_ORGANIZATION, "pattern": NOT_BLANK},
}


def request_schemas() -> dict[str, Schema]:
    return {
        "ResolveRequest": closed_object(
            {"resolved_by": MANUAL_FIELDS["updated_by"], "notes": MANUAL_FIELDS["notes"]},
            optional=("resolved_by", "notes"),
        ),
        "ManualFixRequest": closed_object(MANUAL_FIELDS, optional=tuple(MANUAL_FIELDS)),
        "FixByHostnameRequest": closed_object(
            {
                "hostname": {"type": "string", "maxLength": MAX_HOSTNAME, "pattern": NOT_BLANK},
                "type": ref("VarianceType"),
                **MANUAL_FIELDS,
            },
            optional=("type", *MANUAL_FIELDS),
        ),
        "BulkUpdateRequest": closed_object(
            {
                "exception_ids": {"type": "array", "minItems": 1, "maxItems": MAX_IDS, "items": ref("ExceptionId")},
                "action": {"type": "string", "enum": list(BULK_ACTIONS), "default": "mark_manually_fixed"},
                "reason": {
                    "type": "string",
                    "maxLength": MAX_TEXT,
                    "pattern": NOT_BLANK,
                    "description": "Required by accept, and only allowed with it.",
                },
                "expires_on": {**DAY, "description": "accept only: the variance is active again after this day."},
                **MANUAL_FIELDS,
            },
            optional=("action", "reason", "expires_on", *MANUAL_FIELDS),
        ),
        "OrganizationMapRequest": closed_object(
            {"mappings": {"type": "array", "maxItems": MAX_MAPPINGS, "items": closed_object(MAPPING_PAIR)}}
        ),
    }
