"""A job's log in the OpenAPI document: its lines over REST and the live tail over SSE, with
their schemas (``c``: the building blocks of server/openapi/components.py). Limits and names
come from collectors/contract.py and routes.py."""

from __future__ import annotations

from collectors.contract import LOG_STREAMS, MAX_LOG_PAGE
from server.joblogs.routes import DEFAULT_LOG_PAGE, MAX_LINE_NUMBER
from server.openapi import components as c
from server.openapi.components import Names, Part, Schema

TEXT = {"type": "string"}
COUNT = {"type": "integer", "minimum": 0}
STREAM_RESUME_LINE = "A log line number (the SSE id of the last line received)."


def log_schemas(names: Names) -> dict[str, Schema]:
    return {
        "LogLine": c.closed_object(
            {
                "line": {"type": "integer", "minimum": 1},
                "stream": {"type": "string", "enum": list(LOG_STREAMS)},
                "progress": {"type": "boolean", "description": "An @progress report line of stdout."},
                "time": c.ref("Timestamp"),
                "text": TEXT,
            }
        ),
        "JobLogs": c.closed_object(
            {
                "job_id": c.ref("JobId"),
                "status": c.ref("Status"),
                "lines": {"type": "array", "items": c.ref("LogLine")},
                "dropped_lines": {**COUNT, "description": "Lines before the first kept one that were dropped."},
                "next_after": COUNT,
                "complete": {"type": "boolean", "description": "The job has ended and no line follows."},
            }
        ),
    }


def log_paths(names: Names) -> dict[str, Schema]:
    job_id = c.path_id("job_id", "JobId")
    return {
        "/api/collectors/runs/job/{job_id}/logs": {
            "get": c.operation(
                "getJobLogs",
                "A job's log lines after a line number",
                {
                    "200": c.json_response("Lines, oldest first.", "JobLogs"),
                    "400": c.error("after or limit out of range, or an unknown query parameter."),
                    "404": c.error("No job with this id (a malformed id included)."),
                    "500": c.SERVER_ERROR,
                },
                parameters=[
                    job_id,
                    c.query(
                        "after",
                        {"type": "integer", "minimum": 0, "maximum": MAX_LINE_NUMBER, "default": 0},
                        "Lines numbered above this.",
                    ),
                    c.query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LOG_PAGE, "default": DEFAULT_LOG_PAGE},
                        "",
                    ),
                ],
            )
        },
        "/api/collectors/runs/job/{job_id}/logs/events": {
            "get": c.operation(
                "streamJobLogs",
                "Server-Sent Events: a job's log lines, stored ones first, then live",
                {
                    "200": {
                        "description": "The lines after the resume line, then each new line as it is stored;"
                        " ends with an 'end' event once the job has ended and its last line was sent.",
                        "content": {
                            "text/event-stream": {
                                "schema": {
                                    "type": "string",
                                    "description": "Events 'id: <line>', 'event: log', 'data: <a LogLine>'; finally"
                                    " 'event: end', 'data: {\"job_id\": ..., \"status\": ...}'.",
                                }
                            }
                        },
                    },
                    "204": {"description": "The job has ended and the client has its last line: nothing more."},
                    "400": c.error("A resume line that is not a number, or an unknown query parameter."),
                    "404": c.error(
                        "No job with this id, a malformed one included (answered before the stream starts)."
                    ),
                    "500": c.SERVER_ERROR,
                    "503": c.error("The server is shutting down; reconnect (to another node)."),
                },
                parameters=[
                    job_id,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": STREAM_RESUME_LINE,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,15}$"},
                    },
                    c.query("lastEventId", {"type": "string", "pattern": "^[0-9]{1,15}$"}, STREAM_RESUME_LINE),
                    c.query("after", {"type": "string", "pattern": "^[0-9]{1,15}$"}, STREAM_RESUME_LINE),
                ],
            )
        },
    }


PART = Part(schemas=log_schemas, paths=log_paths)
