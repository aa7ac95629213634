"""Shared pieces of the OpenAPI document: the schema helpers, the base schemas every part
refers to (errors, statuses, ids, timestamps), and the common responses and parameters.

A part of the document (each feature's ``openapi.py``: server/runs/, server/realtime/,
server/webhooks/, ...) builds on this module and exposes a ``PART``;
server/service/openapi_document.py lists the parts and assembles them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from collectors.contract import BATCH_ID, JOB_ID, JOB_STATUSES, PRIORITIES
from collectors.registry import NAME_PATTERN

Schema = dict[str, Any]

TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
NO_NUL = "^[^\\u0000]*$"
ADMIN = "Needs the admin role."


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


@dataclasses.dataclass(frozen=True)
class Names:
    """What the document depends on: the app's collectors (sorted) and documents (by name)."""

    collectors: list[str]
    docs: list[str]


@dataclasses.dataclass(frozen=True)
class Part:
    """One part of the document: the component schemas it defines and the paths it describes."""

    schemas: Callable[[Names], dict[str, Schema]]
    paths: Callable[[Names], dict[str, Schema]]


def base_schemas(names: Names) -> dict[str, Schema]:
    """The schemas every part may refer to."""
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


def query(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


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


def named_collectors_query(names: Names, description: str) -> Schema:
    """``?collectors=``: configured collectors, or any collector name that has runs."""
    return {
        "name": "collectors",
        "in": "query",
        "required": False,
        "description": description
        + " Comma-separated or repeated. Configured collectors, or any that has runs (the answer lists those"
        " no longer configured in unconfigured_collectors); a name that is neither, or is repeated, is a 400.",
        "style": "form",
        "explode": False,
        "schema": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": NAME_PATTERN.pattern, "examples": names.collectors[:3]},
        },
    }


def operation(operation_id: str, summary: str, responses: Mapping[str, Any], **extra: Any) -> Schema:
    return {"operationId": operation_id, "summary": summary, **extra, "responses": dict(responses)}


UNKNOWN_QUERY = error("An unknown query parameter; the message lists the ones this operation accepts.")


def with_query_check(paths: dict[str, Schema]) -> dict[str, Schema]:
    """Every operation answers 400 to a query parameter it does not accept
    (server/api/validation.py ``reject_unknown_query_parameters``)."""
    for item in paths.values():
        for op in item.values():
            if isinstance(op, dict) and "responses" in op:
                op["responses"].setdefault("400", UNKNOWN_QUERY)
    return paths


def no_schemas(names: Names) -> dict[str, Schema]:
    return {}


def no_paths(names: Names) -> dict[str, Schema]:
    return {}


PART = Part(schemas=base_schemas, paths=no_paths)
