"""The audit part of the OpenAPI document: ``GET /api/audit``."""

from __future__ import annotations

from server.audit.actor import ACTOR_KINDS
from server.audit.entry import OUTCOMES
from server.audit.routes import ACTION_FILTER, CURSOR, DEFAULT_LIMIT, MAX_FILTER_CHARS, MAX_LIMIT
from server.openapi.components import Names, Part, Schema, closed_object, error, json_response, operation, query, ref


def audit_schemas(names: Names) -> dict[str, Schema]:
    text = {"type": ["string", "null"]}
    return {
        "AuditEntry": closed_object(
            {
                "id": {"type": "integer", "minimum": 1},
                "at": ref("Timestamp"),
                "actor": {
                    "type": "string",
                    "description": "The API key's name, 'jwt' and the token's subject, 'open mode', 'cli' and the"
                    " user, 'schedule' and its name, or 'anonymous' (no valid credential).",
                },
                "actor_kind": {"type": "string", "enum": list(ACTOR_KINDS)},
                "key_id": {**text, "description": "The API key's public id (never the key)."},
                "role": {**text, "description": "The role the credential granted."},
                "action": {"type": "string", "examples": ["schedule.create", "batch.cancel", "webhook.update"]},
                "target_ids": {"type": "array", "items": {"type": "string"}},
                "outcome": {"type": "string", "enum": list(OUTCOMES)},
                "status": {
                    "type": ["integer", "null"],
                    "description": "The HTTP status of a refused or failed request.",
                },
                "detail": {**text, "description": "What changed, or why it was refused; never a secret."},
                "request_id": {**text, "description": "The X-Request-Id of the request (also in the access log)."},
                "client_address": text,
            }
        ),
        "AuditPage": closed_object(
            {
                "entries": {"type": "array", "items": ref("AuditEntry")},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as cursor for the next (older) page; null on the last page.",
                },
            }
        ),
    }


def audit_paths(names: Names) -> dict[str, Schema]:
    filter_text = {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_CHARS}
    return {
        "/api/audit": {
            "get": operation(
                "listAudit",
                "The audit trail: every change made through the API or the CLI, refused ones too, newest first."
                " Needs the admin role.",
                {
                    "200": json_response("A page of entries.", "AuditPage"),
                    "400": error("A filter, the cursor or the limit is not valid."),
                },
                parameters=[
                    query("actor", filter_text, "Only this actor (exactly as shown in actor)."),
                    query(
                        "action",
                        {**filter_text, "pattern": ACTION_FILTER.pattern},
                        "Only this action, or every action under a prefix ending in '.' (schedule.).",
                    ),
                    query("target", filter_text, "Only entries naming this id among target_ids."),
                    query("outcome", {"type": "string", "enum": list(OUTCOMES)}, "Only this outcome."),
                    query("since", {"type": "string", "format": "date-time"}, "Only entries at or after this time."),
                    query("until", {"type": "string", "format": "date-time"}, "Only entries before this time."),
                    query("cursor", {"type": "string", "pattern": CURSOR.pattern}, "next_cursor of a previous page."),
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                        "Entries per page.",
                    ),
                ],
            )
        }
    }


PART = Part(audit_schemas, audit_paths)
