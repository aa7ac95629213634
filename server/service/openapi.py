"""The service paths of the OpenAPI document: the documentation (``/api/docs``, this
document), liveness and readiness, the metrics, the console's pages and its icon, with their schemas."""

from __future__ import annotations

from server.openapi.components import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    VERSION_HEADERS,
    Names,
    Part,
    Schema,
    closed_object,
    error,
    json_response,
    operation,
)
from server.service.static_routes import CONSOLE_VIEWS


def service_schemas(names: Names) -> dict[str, Schema]:
    doc_names = names.docs
    return {
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
                "version": {"type": "string", "description": "The collector-hub version this process runs."},
            },
            optional=("redis", "listener"),
        ),
    }


# What each console address is, for the document; its parameters come from the route table
# (server/service/static_routes.py CONSOLE_VIEWS).
CONSOLE_OPERATIONS = {
    "/": ("consoleOverview", "Console: every active run, queue, runners and collectors at a glance"),
    "/runs": ("consoleRuns", "Console: the runs, newest first; its filters are GET /api/collectors/batches's"),
    "/runs/{batch_id}": ("consoleRun", "Console: one run, its jobs and their logs, live"),
    "/collectors/{collector}": ("consoleCollector", "Console: one collector's statistics, charts and recent runs"),
    "/schedules": ("consoleSchedules", "Console: the schedules, their next fire times and last results"),
    "/inventory": ("consoleInventory", "Console: devices per source, the coverage gap, device search"),
    "/variances": ("consoleVariances", "Console: the cross-vendor variances, filtered as GET /api/exceptions, live"),
    "/webhooks": ("consoleWebhooks", "Console (admin): the webhook receivers; send one a test event"),
    "/audit": ("consoleAudit", "Console (admin): the audit trail; its filters are GET /api/audit's"),
}


def console_paths() -> dict[str, Schema]:
    page = {
        "200": {"description": "The console's HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}
    }
    # A path parameter that is not of its shape matches no route: the JSON 404 of any unknown path.
    not_a_page = {"404": error("The path names no page (the id or name is not of its shape).")}
    paths = {}
    for template, (patterns, query) in CONSOLE_VIEWS.items():
        operation_id, summary = CONSOLE_OPERATIONS[template]
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{pattern}$"}}
            for name, pattern in patterns.items()
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": "Kept in the address by the view, which passes it on to the API.",
                "schema": {"type": "string"},
            }
            for name in query
        ]
        responses = {**page, **not_a_page} if patterns else page
        paths[template] = {"get": operation(operation_id, summary, responses, parameters=parameters)}
    return paths


def service_paths(names: Names) -> dict[str, Schema]:
    doc_names = names.docs
    return {
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
        **console_paths(),
        "/favicon.ico": {
            "get": operation(
                "favicon",
                "The console's icon",
                {"200": {"description": "An ICO image.", "content": {"image/x-icon": {"schema": {"type": "string"}}}}},
            )
        },
    }


PART = Part(schemas=service_schemas, paths=service_paths)
