"""The live paths of the OpenAPI document: the Server-Sent Events streams and the WebSocket
(docs/LIVE_PUSH.md). The long-poll (``?wait=``) is a parameter of the run GETs, in runs.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.openapi.components import (
    SERVER_ERROR,
    Names,
    Part,
    Schema,
    collectors_query,
    error,
    no_schemas,
    operation,
    path_id,
)

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
    {
        "name": "since",
        "in": "query",
        "required": False,
        "description": "The same as lastEventId, under another name.",
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


def live_paths(names: Names) -> dict[str, Schema]:
    collector_names = names.collectors
    bad_resume = "A Last-Event-ID / lastEventId that is not a seq."
    return {
        "/api/collectors/runs/batch/{batch_id}/events": _stream(
            "streamBatch",
            "Server-Sent Events: a batch's state, live",
            True,
            [path_id("batch_id", "BatchId")],
            {
                "400": error(bad_resume),
                "404": error("No batch with this id, or a malformed one (answered before the stream starts)."),
            },
        ),
        "/api/collectors/runs/job/{job_id}/events": _stream(
            "streamJob",
            "Server-Sent Events: a job's state, live",
            True,
            [path_id("job_id", "JobId")],
            {"400": error(bad_resume), "404": error("No job with this id (or a malformed one).")},
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


PART = Part(schemas=no_schemas, paths=live_paths)
