"""The health part of the OpenAPI document: ``GET /api/collectors/health`` and the data of the
``collector.*`` webhook events."""

from __future__ import annotations

from server.health.rules import HEALTH_STATES
from server.openapi.components import Names, Part, Schema, closed_object, json_response, nullable, operation, ref


def health_fields(names: Names) -> dict[str, Schema]:
    timestamp = ref("Timestamp")
    state = {"type": "string", "enum": list(HEALTH_STATES)}
    return {
        "collector": {"type": "string", "enum": names.collectors} if names.collectors else {"type": "string"},
        "state": {
            **state,
            "description": "failing: at least alert_after_failures failed runs in a row; stale: no success within"
            " stale_after (from the first sight of a collector never successful); failing wins over stale.",
        },
        "state_since": {
            **nullable(timestamp),
            "description": "When the hub recorded this state (and alerted for it); null until it has.",
        },
        "last_success_at": nullable(timestamp),
        "last_success_age_seconds": {"type": ["integer", "null"], "minimum": 0},
        "last_failure_at": nullable(timestamp),
        "last_error": {"type": ["string", "null"], "description": "The error of the last failed run."},
        "last_job_id": nullable(ref("JobId")),
        "consecutive_failures": {
            "type": "integer",
            "minimum": 0,
            "description": "Failed runs since the last success (cancelled runs are not counted).",
        },
        "alert_after_failures": {"type": "integer", "minimum": 1},
        "stale_after_seconds": {"type": ["integer", "null"], "minimum": 1, "description": "null: never stale."},
    }


def health_schemas(names: Names) -> dict[str, Schema]:
    fields = health_fields(names)
    return {
        "CollectorHealth": closed_object(fields),
        "CollectorsHealth": closed_object({"collectors": {"type": "array", "items": ref("CollectorHealth")}}),
        "CollectorHealthChange": closed_object(
            {**fields, "previous_state": {"type": "string", "enum": list(HEALTH_STATES)}}
        ),
    }


def health_paths(names: Names) -> dict[str, Schema]:
    return {
        "/api/collectors/health": {
            "get": operation(
                "getCollectorsHealth",
                "Each configured collector's last success, its age, failures in a row, and its state",
                {"200": json_response("Every configured collector, by name.", "CollectorsHealth")},
            )
        }
    }


PART = Part(health_schemas, health_paths)
