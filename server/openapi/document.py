"""The OpenAPI 3.1 document served at ``/api/openapi.json``, built as Python data.

It has to be exact, not merely helpful: tests check that every route of the app is described
here and that real responses validate against these schemas, and later the server is fuzzed
against it. So patterns, ranges, enums, ``required`` and nullability mirror
``server/validation.py``, ``server/routes.py`` and ``server/representation.py``. When you add
or change a route, change this file in the same commit (tests/test_openapi.py tells you what is
missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from collectors.contract import (
    BATCH_ID,
    DEFAULT_PRIORITY,
    JOB_ID,
    JOB_STATUSES,
    MAX_ERROR_CHARS,
    MAX_HISTORY,
    MAX_MESSAGE_CHARS,
    PRIORITIES,
    REPORTABLE_STATUSES,
    TERMINAL_STATUSES,
)

Schema = dict[str, Any]

TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
NO_NUL = "^[^\\u0000]*$"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null (OpenAPI 3.1: a type list; ``$ref`` needs ``anyOf``)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


def closed_object(properties: Mapping[str, Schema], *, optional: Iterable[str] = ()) -> Schema:
    """An object with exactly these properties, all required unless listed in ``optional``."""
    skip = set(optional)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [name for name in properties if name not in skip],
        "properties": dict(properties),
    }


def _run_schemas() -> dict[str, Schema]:
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
    }
    return {
        "Error": {
            **closed_object({"error": {"type": "string", "minLength": 1}}),
            "description": "Every error response: a human-readable message saying what is wrong.",
        },
        "Status": {"type": "string", "enum": list(JOB_STATUSES)},
        "Priority": {"type": "string", "enum": list(PRIORITIES)},
        "BatchId": {"type": "string", "pattern": BATCH_ID.pattern, "examples": ["bc_12345678"]},
        "JobId": {
            "type": "string",
            "pattern": JOB_ID.pattern,
            "description": "The collector's first two characters, '_', then 8 digits.",
            "examples": ["ni_87654321"],
        },
        "Timestamp": {
            "type": "string",
            "format": "date-time",
            "pattern": TIMESTAMP_PATTERN,
            "description": "UTC with microseconds and a Z suffix.",
            "examples": ["2025-10-06T15:16:10.552780Z"],
        },
        "Percent": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
        "DurationSeconds": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "Whole seconds from request to end; null until the run is terminal.",
        },
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
            }
        ),
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
            }
        ),
        "HistoryEntry": closed_object(
            {
                **{k: job_fields[k] for k in ("job_id", "batch_id", "job_name", "collector", "started_at")},
                "ended_at": job_fields["ended_at"],
                "status": ref("Status"),
                "message": nullable(text),
                "error": nullable(text),
                "progress_percent": ref("Percent"),
                "updated_at": ref("Timestamp"),
                "duration": {
                    "type": ["string", "null"],
                    "pattern": r"^([0-9]+h [0-9]+m [0-9]+s|[0-9]+m [0-9]+s|[0-9]+s)$",
                    "examples": ["1m 20s"],
                },
                "duration_seconds": ref("DurationSeconds"),
            }
        ),
        "History": closed_object(
            {
                "collection_history": {"type": "array", "items": ref("HistoryEntry")},
                "total_runs": {"type": "integer", "minimum": 0},
                "generated_at": ref("Timestamp"),
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
            },
            optional=("priority",),
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


def _other_schemas(doc_names: list[str]) -> dict[str, Schema]:
    return {
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
        "DocsIndex": closed_object(
            {
                "documents": {
                    "type": "array",
                    "items": closed_object(
                        {
                            "name": {"type": "string", "enum": doc_names} if doc_names else {"type": "string"},
                            "title": {"type": "string"},
                            "url": {"type": "string", "pattern": "^/api/docs/[^/]+$"},
                        }
                    ),
                },
                "openapi_url": {"type": "string", "const": "/api/openapi.json"},
            }
        ),
        "Health": closed_object({"status": {"type": "string", "const": "ok"}}),
        "Readiness": closed_object(
            {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "database": {"type": "string", "enum": ["ok", "unreachable"]},
                "redis": {
                    "type": "string",
                    "enum": ["ok", "unreachable"],
                    "description": "Only with COLLECTOR_HUB_REDIS_URL; rate limits fail open while it is unreachable.",
                },
                "listener": {"type": "string", "enum": ["starting", "listening", "reconnecting", "stopped"]},
            },
            optional=("redis", "listener"),
        ),
    }


# ---------------------------------------------------------------------------------------------
# Responses and parameters


def json_response(description: str, schema_name: str, headers: Mapping[str, Any] | None = None) -> Schema:
    response: Schema = {"description": description, "content": {"application/json": {"schema": ref(schema_name)}}}
    if headers:
        response["headers"] = dict(headers)
    return response


def error(description: str) -> Schema:
    return json_response(description, "Error")


VERSION_HEADERS = {
    "ETag": {
        "description": "Version of the body; it changes with every committed change. Send it back in If-None-Match.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cache-Control": {"required": True, "schema": {"type": "string", "const": "no-cache"}},
}
NOT_MODIFIED = {
    "description": "Not modified: the If-None-Match tag is the current version. No body.",
    "headers": VERSION_HEADERS,
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "An ETag from an earlier response (or a comma-separated list, or *): 304 if still current.",
    "schema": {"type": "string"},
}
WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": (
        "Long-poll: hold the request up to this many seconds until the state differs from the one named by "
        "If-None-Match (or from the state when the request arrived). Answers at once for a terminal object; "
        "when the wait ends unchanged, 304 if If-None-Match still matches, else the unchanged state."
    ),
    "schema": {"type": "integer", "minimum": 0, "maximum": 30},
}
SERVER_ERROR = error("Unexpected server failure (for example the database is unreachable).")
BAD_BODY = {
    "400": error("Malformed JSON, not an object, an unknown field, or a field with a wrong type or value."),
    "413": error("The request body is larger than the server's limit (COLLECTOR_HUB_MAX_BODY_BYTES)."),
    "415": error("A body was sent with a Content-Type other than application/json (text/plain is tolerated)."),
}


def links_to(target: str, *operation_ids: str) -> dict[str, Schema]:
    """OpenAPI links from a response to the operations that take one of its ids, so clients
    (and fuzzers) can follow a run from its creation. ``target`` is ``batch`` or ``job``."""
    source = {"batch": "$response.body#/batch_id", "job": "$response.body#/collectors/0/job_id"}[target]
    return {op: {"operationId": op, "parameters": {f"{target}_id": source}} for op in operation_ids}


def path_id(name: str, schema_name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": ref(schema_name)}


def collectors_query(collector_names: list[str], description: str) -> Schema:
    return {
        "name": "collectors",
        "in": "query",
        "required": False,
        "description": description + " Comma-separated; unknown or repeated names are a 400.",
        "style": "form",
        "explode": False,
        "schema": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "enum": collector_names},
        },
    }


def operation(operation_id: str, summary: str, responses: Mapping[str, Any], **extra: Any) -> Schema:
    return {"operationId": operation_id, "summary": summary, **extra, "responses": dict(responses)}


def _paths(collector_names: list[str], doc_names: list[str]) -> dict[str, Schema]:
    batch_id = path_id("batch_id", "BatchId")
    job_id = path_id("job_id", "JobId")
    bad_batch_id = error("Malformed batch id (expected 'bc_' and 8 digits).")
    bad_job_id = error("Malformed job id (two letters or digits, '_', 8 digits).")
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
                    "400": bad_batch_id,
                    "404": error("No batch with this id."),
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
                    "400": bad_batch_id,
                    "404": error("No batch with this id."),
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
                    "400": bad_job_id,
                    "404": error("No job with this id."),
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
                    "400": bad_job_id,
                    "404": error("No job with this id."),
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
                    "400": error("Malformed job id, malformed JSON, an unknown field, or a bad field value."),
                    "404": error("No job with this id."),
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
                    collectors_query(collector_names, "Collectors to report; all known ones if absent."),
                    IF_NONE_MATCH,
                ],
            )
        },
        "/api/collectors/history": {
            "get": operation(
                "getHistory",
                "Recent runs, newest first, running ones included",
                {
                    "200": json_response("Runs, newest first.", "History"),
                    "400": error("limit out of range, or unknown, repeated or empty collector names."),
                    "500": SERVER_ERROR,
                },
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY, "default": 10},
                    },
                    collectors_query(collector_names, "Only runs of these collectors; all if absent."),
                ],
            )
        },
        "/api/docs": {
            "get": operation(
                "listDocs", "Index of the documentation", {"200": json_response("The documents.", "DocsIndex")}
            )
        },
        "/api/docs/{name}": {
            "get": operation(
                "getDoc",
                "One document, as markdown",
                {
                    "200": {
                        "description": "The document.",
                        "headers": VERSION_HEADERS,
                        "content": {"text/markdown": {"schema": {"type": "string"}}},
                    },
                    "304": NOT_MODIFIED,
                    "404": error("No document of that name (the error lists the available ones)."),
                },
                parameters=[
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "description": "A file name as listed by GET /api/docs, including '.md'.",
                        "schema": {"type": "string", "enum": doc_names} if doc_names else {"type": "string"},
                    },
                    IF_NONE_MATCH,
                ],
            )
        },
        "/api/openapi.json": {
            "get": operation(
                "getOpenApi",
                "This document",
                {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            )
        },
        **_live_paths(collector_names),
        "/healthz": {
            "get": operation("healthz", "Liveness: the process answers", {"200": json_response("Alive.", "Health")})
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "Readiness: the database answers",
                {
                    "200": json_response("Ready.", "Readiness"),
                    "503": json_response("The database is unreachable.", "Readiness"),
                },
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics (text exposition format); role read unless COLLECTOR_HUB_METRICS_PUBLIC",
                {
                    "200": {
                        "description": "Metrics in the Prometheus text format 0.0.4.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/": {
            "get": operation(
                "dashboard",
                "The dashboard page (its files are under /static/)",
                {"200": {"description": "HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
            )
        },
    }


SSE_RESUME = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "Resume: the last seq received (EventSource sends it on reconnect).",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
    {
        "name": "lastEventId",
        "in": "query",
        "required": False,
        "description": "Resume, for a first connect (browsers cannot set headers on EventSource).",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
]
SSE_BODY = {
    "text/event-stream": {
        "schema": {
            "type": "string",
            "description": (
                "Events 'id: <seq>', 'event: batch|job', 'data: <the GET JSON>'; a 'retry:' hint first and a "
                "': heartbeat' comment every COLLECTOR_HUB_STREAM_HEARTBEAT seconds. See docs/LIVE_PUSH.md."
            ),
        }
    }
}


def _stream(operation_id: str, summary: str, ends: bool, params: list[Schema], errors: Mapping[str, Any]) -> Schema:
    responses: dict[str, Any] = {
        "200": {
            "description": "The current state (if newer than the resume id), then every change"
            + (", ending after the terminal state." if ends else "; never ends by itself."),
            "content": SSE_BODY,
        },
        **errors,
        "500": SERVER_ERROR,
        "503": error("The server is shutting down; reconnect (to another node)."),
    }
    if ends:
        responses["204"] = {"description": "The resume id is already the terminal state: nothing more will come."}
    return {"get": operation(operation_id, summary, responses, parameters=[*params, *SSE_RESUME])}


def _live_paths(collector_names: list[str]) -> dict[str, Schema]:
    bad_resume = "Malformed batch id, or a Last-Event-ID / lastEventId that is not a seq."
    return {
        "/api/collectors/runs/batch/{batch_id}/events": _stream(
            "streamBatch",
            "Server-Sent Events: a batch's state, live",
            True,
            [path_id("batch_id", "BatchId")],
            {"400": error(bad_resume), "404": error("No batch with this id (answered before the stream starts).")},
        ),
        "/api/collectors/runs/job/{job_id}/events": _stream(
            "streamJob",
            "Server-Sent Events: a job's state, live",
            True,
            [path_id("job_id", "JobId")],
            {"400": error(bad_resume.replace("batch", "job")), "404": error("No job with this id.")},
        ),
        "/api/collectors/events": _stream(
            "streamCollectors",
            "Server-Sent Events: every run of the named collectors (default: all), live",
            False,
            [collectors_query(collector_names, "Collectors to follow.")],
            {"400": error("Unknown or repeated collector names, or a resume id that is not a seq.")},
        ),
        "/api/ws": {
            "get": operation(
                "websocket",
                "WebSocket: subscribe to batches, jobs and collectors over one connection (docs/LIVE_PUSH.md)",
                {
                    "101": {"description": "Switching to the WebSocket protocol."},
                    "400": error("Not a WebSocket upgrade request."),
                    "503": error("The server is shutting down; reconnect (to another node)."),
                },
            )
        },
    }


def build_openapi(collectors: Iterable[str], doc_names: Iterable[str] = ()) -> dict[str, Any]:
    """The whole document for an app with these collectors and documents (by name)."""
    from server.openapi.webhooks import webhook_paths, webhook_schemas  # it builds on this module

    collector_names = sorted(collectors)
    docs = list(doc_names)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Collector Hub",
            "version": "1.0.0",
            "description": (
                "Tracks collector runs (batches of jobs) and their progress. Every error is a JSON object "
                '{"error": "..."}; unknown paths are 404 and unknown methods 405 (with Allow), in that shape too. '
                "Timestamps are UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ. Prose documentation: GET /api/docs."
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": with_security({**_paths(collector_names, docs), **webhook_paths()}),
        "components": {
            "schemas": {
                **_run_schemas(),
                **_request_schemas(collector_names),
                **_other_schemas(docs),
                **webhook_schemas(),
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


# ---------------------------------------------------------------------------------------------
# Security (server/security/): applied to every operation, including ones added later, so that
# a new route is documented as needing credentials unless it is listed as public here. The
# auth tests check this list against the roles the handlers declare.

PUBLIC_OPERATIONS = frozenset({"listDocs", "getDoc", "getOpenApi", "healthz", "readyz", "dashboard"})
SECURITY_SCHEMES: dict[str, Schema] = {
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A key from `collector-hub keys create` or COLLECTOR_HUB_API_KEYS.",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256, RS256 or ES256; exp required; role from the role claim or scope.",
    },
}
# Operations that never touch the database (readyz documents its own 503). Every other one
# may: its own queries, or the API-key lookup of its credentials.
NO_DATABASE_OPERATIONS = frozenset({"listDocs", "getDoc", "getOpenApi", "healthz", "readyz", "dashboard"})
RATE_LIMIT_HEADERS: dict[str, Schema] = {
    "Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "RateLimit-Limit": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "RateLimit-Remaining": {"required": True, "schema": {"type": "string", "const": "0"}},
    "RateLimit-Reset": {
        "required": True,
        "description": "Seconds until the window starts again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}


def is_rate_limited_operation(path: str, method: str) -> bool:
    return method == "get" and (path.startswith("/api/collectors/runs/") or path == "/api/collectors/history")


def with_security(paths: dict[str, Schema]) -> dict[str, Schema]:
    """Credentials, 401 and 403 on every non-public operation; 503 where the database is
    needed; 429 on rate-limited reads."""
    for path, item in paths.items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if op["operationId"] not in PUBLIC_OPERATIONS:
                op["security"] = [{"apiKey": []}, {"bearer": []}]
                op["responses"].setdefault(
                    "401", error("Missing, unknown, revoked, expired or forged credentials (WWW-Authenticate: Bearer).")
                )
                op["responses"].setdefault("403", error("The credentials' role is not enough for this operation."))
            if op["operationId"] not in NO_DATABASE_OPERATIONS:
                unavailable = error("PostgreSQL cannot be reached, or the connection broke mid-request; try again.")
                unavailable["headers"] = {"Retry-After": {"required": True, "schema": {"type": "string", "const": "1"}}}
                op["responses"].setdefault("503", unavailable)
            if is_rate_limited_operation(path, method):
                too_many = error("Over the rate limit for this client (COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE).")
                too_many["headers"] = RATE_LIMIT_HEADERS
                op["responses"].setdefault("429", too_many)
    return paths
