"""The REST run paths of the OpenAPI document: trigger, the collector list, batches and jobs
(read, cancel, report progress), the latest runs and the history, with their schemas.

Patterns, ranges, enums, ``required`` and nullability mirror server/api/validation.py,
server/runs/routes.py and server/runs/representation.py.
"""

from __future__ import annotations

from collectors.contract import (
    DEFAULT_PRIORITY,
    MAX_ERROR_CHARS,
    MAX_MESSAGE_CHARS,
    REPORTABLE_STATUSES,
    STARTED_BY_KINDS,
    TERMINAL_STATUSES,
)
from collectors.registry import CROSS_VENDOR_CHECKS
from server.openapi.components import (
    BAD_BODY,
    IF_NONE_MATCH,
    NO_NUL,
    NOT_MODIFIED,
    SERVER_ERROR,
    VERSION_HEADERS,
    Names,
    Part,
    Schema,
    closed_object,
    error,
    json_response,
    links_to,
    named_collectors_query,
    nullable,
    operation,
    path_id,
    ref,
)
from server.realtime.polling import MAX_WAIT_SECONDS

WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": (
        "Long-poll: hold the request up to this many seconds until the state differs from the one named by "
        "If-None-Match (or from the state when the request arrived). Answers at once for a terminal object; "
        "when the wait ends unchanged, 304 if If-None-Match still matches, else the unchanged state."
    ),
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
}


def run_schemas(names: Names) -> dict[str, Schema]:
    """The run representations, then the request bodies, then the collector list."""
    text = {"type": "string"}
    job_fields: dict[str, Schema] = {
        "job_id": ref("JobId"),
        "batch_id": ref("BatchId"),
        "job_name": text,
        "collector": text,
        "status": ref("Status"),
        "started_at": ref("Timestamp"),
        "updated_at": ref("Timestamp"),
        "ended_at": nullable(ref("Timestamp")),
        "progress_percent": ref("Percent"),
        "message": nullable(text),
        "error": nullable(text),
        "duration_seconds": ref("DurationSeconds"),
        "rerun_of": {**nullable(ref("JobId")), "description": "The job this one re-runs, if it is a re-run."},
        "attempt": {
            "type": "integer",
            "minimum": 1,
            "description": "Which attempt the job is on: 1, or more after a failed attempt was retried"
            " (docs/COLLECTORS.md, Automatic retries). While it waits for the next one it is queued.",
        },
        "max_attempts": {"type": "integer", "minimum": 1, "description": "1 plus its collector's retries."},
    }
    # What names each way a batch starts (a KeyError here: a kind added to the contract needs its schema).
    started_by_name = {"manual": nullable(text), "schedule": text, "rerun": ref("BatchId")}
    return {
        "CreatedJob": closed_object(
            {
                "job_name": text,
                "job_id": ref("JobId"),
                "collector": text,
                "status": ref("Status"),
                "started_at": ref("Timestamp"),
            }
        ),
        "CreatedBatch": closed_object(
            {
                "batch_id": ref("BatchId"),
                "status": ref("Status"),
                "priority": ref("Priority"),
                "collectors": {"type": "array", "minItems": 1, "items": ref("CreatedJob")},
            }
        ),
        "CrossVendorStarted": closed_object(
            {
                "success": {"type": "boolean", "const": True},
                "message": text,
                "job_id": ref("JobId"),
                "batch_id": ref("BatchId"),
                "status": ref("Status"),
                "priority": ref("Priority"),
                "collectors": {"type": "array", "minItems": 1, "maxItems": 1, "items": ref("CreatedJob")},
            }
        ),
        "BatchJob": closed_object({k: v for k, v in job_fields.items() if k != "batch_id"}),
        "Batch": closed_object(
            {
                "batch_id": ref("BatchId"),
                "status": ref("Status"),
                "priority": ref("Priority"),
                "progress_percent": ref("Percent"),
                "estimated_completion": nullable(ref("Timestamp")),
                "started_at": ref("Timestamp"),
                "updated_at": ref("Timestamp"),
                "ended_at": nullable(ref("Timestamp")),
                "message": nullable(text),
                "error": nullable(text),
                "collectors": {"type": "array", "items": ref("BatchJob")},
                "duration_seconds": ref("DurationSeconds"),
                "schedule": {
                    **nullable(ref("BatchSchedule")),
                    "description": "The schedule that started this batch (docs/SCHEDULES.md); null otherwise.",
                },
                "rerun_of": {**nullable(ref("BatchId")), "description": "The batch this one re-runs, if any."},
                "started_by": ref("StartedBy"),
            }
        ),
        "StartedBy": {
            "description": (
                "How the batch started. manual: by hand (the API, the console, the CLI), name the stored API key it"
                " was started with, null for none, a key from the settings or a token; schedule: by a schedule, fired"
                " or run now, name the schedule's; rerun: a re-run, name the id of the batch it re-runs."
            ),
            "oneOf": [
                closed_object({"kind": {"type": "string", "const": kind}, "name": started_by_name[kind]})
                for kind in STARTED_BY_KINDS
            ],
        },
        "Job": closed_object(
            {
                **job_fields,
                "batch_status": ref("Status"),
                "batch_progress_percent": ref("Percent"),
                "estimated_completion": nullable(ref("Timestamp")),
                "batch_message": nullable(text),
            }
        ),
        "LatestRuns": closed_object(
            {
                "latest_runs": {"type": "array", "items": ref("Job")},
                "total_runs": {"type": "integer", "minimum": 0},
                "generated_at": ref("Timestamp"),
                "unconfigured_collectors": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The named collectors that have runs but are no longer configured.",
                },
            }
        ),
        **_request_schemas(names.collectors),
        "CollectorList": closed_object(
            {
                "collectors": {
                    "type": "array",
                    "items": closed_object(
                        {
                            "name": {"type": "string"},
                            "job_name": {"type": "string"},
                            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
                        }
                    ),
                }
            }
        ),
    }


def _request_schemas(collector_names: list[str]) -> dict[str, Schema]:
    bounded_text = {"type": "string", "pattern": NO_NUL}
    return {
        "TriggerRequest": closed_object(
            {
                "collectors": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"type": "string", "enum": collector_names},
                    "description": "Names of known collectors (GET /api/collectors lists them), each at most once.",
                },
                "priority": {**ref("Priority"), "default": DEFAULT_PRIORITY},
                "run_cross_vendor": {
                    "type": "boolean",
                    "description": (
                        f"Add the {CROSS_VENDOR_CHECKS} job, which runs after the other jobs of the batch"
                        " (docs/COLLECTORS.md). When absent: added if the batch holds a collector the checks run"
                        " after (ninja, threatlocker), unless COLLECTOR_HUB_CROSS_VENDOR_BY_DEFAULT is off."
                    ),
                },
            },
            optional=("priority", "run_cross_vendor"),
        ),
        "CrossVendorRequest": closed_object(
            {
                "priority": {**ref("Priority"), "default": DEFAULT_PRIORITY},
                "force_refresh": {
                    "type": "boolean",
                    "description": "Accepted for ES Inventory Hub's clients; no effect.",
                },
            },
            optional=("priority", "force_refresh"),
        ),
        "ProgressRequest": closed_object(
            {
                "status": {"type": "string", "enum": list(REPORTABLE_STATUSES)},
                "progress_percent": {
                    **ref("Percent"),
                    "description": "null (or absent) keeps the current value.",
                },
                "message": {
                    **nullable({**bounded_text, "maxLength": MAX_MESSAGE_CHARS}),
                    "description": "null (or absent) keeps the current message.",
                },
                "error": {
                    **nullable({**bounded_text, "maxLength": MAX_ERROR_CHARS}),
                    "description": "Replaces the job's error; null (or absent) clears it.",
                },
            },
            optional=("progress_percent", "message", "error"),
        ),
    }


def run_paths(names: Names) -> dict[str, Schema]:
    batch_id = path_id("batch_id", "BatchId")
    job_id = path_id("job_id", "JobId")
    no_batch = error("No batch with this id; a malformed id is one that does not exist.")
    no_job = error("No job with this id; a malformed id is one that does not exist.")
    terminal = ", ".join(sorted(TERMINAL_STATUSES))
    return {
        "/api/collectors/run": {
            "post": operation(
                "triggerRun",
                "Queue one job per named collector in a new batch",
                {
                    "201": {
                        **json_response("The new batch and its queued jobs.", "CreatedBatch"),
                        "links": {
                            **links_to("batch", "getBatch", "cancelBatch"),
                            **links_to("job", "getJob", "cancelJob", "reportProgress"),
                        },
                    },
                    **BAD_BODY,
                    "500": SERVER_ERROR,
                },
                requestBody={"required": True, "content": {"application/json": {"schema": ref("TriggerRequest")}}},
            )
        },
        "/api/collectors/cross-vendor/run": {
            "post": operation(
                "triggerCrossVendorChecks",
                f"Queue the {CROSS_VENDOR_CHECKS} job alone in a new batch",
                {
                    "201": {
                        **json_response("The new batch, with success and the checks job's id.", "CrossVendorStarted"),
                        "links": {
                            **links_to("batch", "getBatch", "cancelBatch"),
                            **links_to("job", "getJob", "cancelJob", "reportProgress"),
                        },
                    },
                    **BAD_BODY,
                    "500": SERVER_ERROR,
                },
                requestBody={"required": False, "content": {"application/json": {"schema": ref("CrossVendorRequest")}}},
            )
        },
        "/api/collectors": {
            "get": operation(
                "listCollectors",
                "The collectors this server knows",
                {"200": json_response("Known collectors.", "CollectorList")},
            )
        },
        "/api/collectors/runs/batch/{batch_id}": {
            "get": operation(
                "getBatch",
                "A batch with all its jobs",
                {
                    "200": {
                        **json_response("The batch.", "Batch", VERSION_HEADERS),
                        "links": links_to("job", "getJob", "cancelJob", "reportProgress"),
                    },
                    "304": NOT_MODIFIED,
                    "404": no_batch,
                    "500": SERVER_ERROR,
                },
                parameters=[batch_id, IF_NONE_MATCH, WAIT],
            )
        },
        "/api/collectors/runs/batch/{batch_id}/cancel": {
            "post": operation(
                "cancelBatch",
                "Cancel every job of the batch that has not ended",
                {
                    "200": json_response("The batch after cancellation.", "Batch"),
                    "404": no_batch,
                    "409": error(f"The batch is already terminal ({terminal}); nothing changed."),
                    "500": SERVER_ERROR,
                },
                parameters=[batch_id],
            )
        },
        "/api/collectors/runs/job/{job_id}": {
            "get": operation(
                "getJob",
                "A job with a summary of its batch",
                {
                    "200": json_response("The job.", "Job", VERSION_HEADERS),
                    "304": NOT_MODIFIED,
                    "404": no_job,
                    "500": SERVER_ERROR,
                },
                parameters=[job_id, IF_NONE_MATCH, WAIT],
            )
        },
        "/api/collectors/runs/job/{job_id}/cancel": {
            "post": operation(
                "cancelJob",
                "Cancel one job",
                {
                    "200": json_response("The job after cancellation.", "Job"),
                    "404": no_job,
                    "409": error(f"The job is already terminal ({terminal}); nothing changed."),
                    "500": SERVER_ERROR,
                },
                parameters=[job_id],
            )
        },
        "/api/collectors/runs/job/{job_id}/progress": {
            "post": operation(
                "reportProgress",
                "Report a job's progress over HTTP (for collectors that cannot reach the database)",
                {
                    "200": json_response("The job after the update.", "Job"),
                    **BAD_BODY,
                    "400": error("Malformed JSON, an unknown field, or a bad field value."),
                    "404": no_job,
                    "409": error(f"The job is already terminal ({terminal}); nothing changed."),
                    "500": SERVER_ERROR,
                },
                parameters=[job_id],
                requestBody={"required": True, "content": {"application/json": {"schema": ref("ProgressRequest")}}},
            )
        },
        "/api/collectors/runs/latest": {
            "get": operation(
                "getLatestRuns",
                "Per collector: its active run, else its most recent one",
                {
                    "200": json_response(
                        "Latest runs, in the order the collectors were named.", "LatestRuns", VERSION_HEADERS
                    ),
                    "304": NOT_MODIFIED,
                    "400": error("Unknown, repeated or empty collector names."),
                    "500": SERVER_ERROR,
                },
                parameters=[
                    named_collectors_query(names, "Collectors to report; all configured ones if absent."),
                    IF_NONE_MATCH,
                ],
            )
        },
    }


PART = Part(schemas=run_schemas, paths=run_paths)
