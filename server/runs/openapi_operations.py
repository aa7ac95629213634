"""Operating runs in the OpenAPI document (issue 12): searchable history and batches, re-run,
statistics and runners, with their schemas (a job's log: server/joblogs/openapi.py).

Limits, defaults and names come from collectors/contract.py and the route modules.
"""

from __future__ import annotations

from collectors.contract import (
    JOB_STATUSES,
    MAX_HISTORY,
    RERUN_SCOPES,
    TERMINAL_STATUSES,
)
from server.openapi.components import (
    BAD_BODY,
    SERVER_ERROR,
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
    query,
    ref,
)
from server.runs.history_routes import DEFAULT_BATCHES, DEFAULT_HISTORY
from server.runs.rerun_routes import DEFAULT_RERUN_SCOPE
from server.runs.stats_routes import DEFAULT_WINDOW

TEXT = {"type": "string"}
COUNT = {"type": "integer", "minimum": 0}
SECONDS = {"type": ["number", "null"], "minimum": 0}
DURATION_TEXT = {
    "type": ["string", "null"],
    "pattern": r"^([0-9]+h [0-9]+m [0-9]+s|[0-9]+m [0-9]+s|[0-9]+s)$",
    "examples": ["1m 20s"],
}


def history_parameters(names: Names, default_limit: int) -> list[Schema]:
    timestamp = {"type": "string", "examples": ["2026-11-29T14:00:00Z"]}
    return [
        named_collectors_query(names, "Only runs of these collectors."),
        {
            **query(
                "status",
                {"type": "array", "minItems": 1, "items": ref("Status")},
                "Only these statuses; comma-separated or repeated.",
            ),
            "style": "form",
            "explode": False,
        },
        query("batch_id", ref("BatchId"), "Only this batch."),
        query("since", timestamp, "Requested at or after (ISO 8601; no offset means UTC)."),
        query("until", timestamp, "Requested before (ISO 8601); since must not be after until."),
        query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY, "default": default_limit}, ""),
        query("cursor", TEXT, "The next_cursor of the previous page, unchanged."),
    ]


def operation_schemas(names: Names) -> dict[str, Schema]:
    by_status = closed_object({status: COUNT for status in JOB_STATUSES})
    page = {
        "generated_at": ref("Timestamp"),
        "next_cursor": {**nullable(TEXT), "description": "Pass as ?cursor= for the next page; null on the last."},
        "unconfigured_collectors": {"type": "array", "items": TEXT},
    }
    return {
        "HistoryEntry": closed_object(
            {
                "job_id": ref("JobId"),
                "batch_id": ref("BatchId"),
                "job_name": TEXT,
                "collector": TEXT,
                "started_at": ref("Timestamp"),
                "ended_at": nullable(ref("Timestamp")),
                "status": ref("Status"),
                "message": nullable(TEXT),
                "error": nullable(TEXT),
                "progress_percent": ref("Percent"),
                "updated_at": ref("Timestamp"),
                "duration": DURATION_TEXT,
                "duration_seconds": ref("DurationSeconds"),
                "attempt": {"type": "integer", "minimum": 1},
                "max_attempts": {"type": "integer", "minimum": 1},
            }
        ),
        "History": closed_object(
            {
                "collection_history": {"type": "array", "items": ref("HistoryEntry")},
                "total_runs": COUNT,
                **page,
            }
        ),
        "BatchSummary": closed_object(
            {
                "batch_id": ref("BatchId"),
                "status": ref("Status"),
                "priority": ref("Priority"),
                "progress_percent": ref("Percent"),
                "started_at": ref("Timestamp"),
                "ended_at": nullable(ref("Timestamp")),
                "message": nullable(TEXT),
                "error": nullable(TEXT),
                "collectors": {"type": "array", "items": TEXT},
                "job_statuses": by_status,
                "duration": DURATION_TEXT,
                "duration_seconds": ref("DurationSeconds"),
                "rerun_of": nullable(ref("BatchId")),
                "started_by": ref("StartedBy"),
            }
        ),
        "BatchList": closed_object(
            {"batches": {"type": "array", "items": ref("BatchSummary")}, "total_batches": COUNT, **page}
        ),
        "RerunRequest": closed_object(
            {
                "only": {
                    "type": "string",
                    "enum": list(RERUN_SCOPES),
                    "default": DEFAULT_RERUN_SCOPE,
                    "description": "failed: the failed and cancelled jobs; all: every job.",
                }
            },
            optional=("only",),
        ),
        "CollectorStats": closed_object(
            {
                "collector": TEXT,
                "configured": {"type": "boolean"},
                "runs": COUNT,
                "by_status": by_status,
                "success_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "duration_seconds": closed_object({"p50": SECONDS, "p95": SECONDS, "max": SECONDS}),
                "queue_wait_seconds": closed_object({"p50": SECONDS, "p95": SECONDS}),
                "last_success": nullable(closed_object({"job_id": ref("JobId"), "ended_at": ref("Timestamp")})),
                "last_failure": nullable(
                    closed_object({"job_id": ref("JobId"), "ended_at": ref("Timestamp"), "error": nullable(TEXT)})
                ),
                "series": {
                    "type": "array",
                    "items": closed_object(
                        {"start": ref("Timestamp"), "runs": COUNT, "failed": COUNT, "median_duration_seconds": SECONDS}
                    ),
                },
            }
        ),
        "Stats": closed_object(
            {
                "window": TEXT,
                "since": ref("Timestamp"),
                "generated_at": ref("Timestamp"),
                "interval": {"type": "string", "enum": ["hour", "day"]},
                "collectors": {"type": "array", "items": ref("CollectorStats")},
                "unconfigured_collectors": {"type": "array", "items": TEXT},
            }
        ),
        "RunnerList": closed_object(
            {
                "runners": {
                    "type": "array",
                    "items": closed_object(
                        {
                            "runner_id": TEXT,
                            "host": TEXT,
                            "collectors": {
                                "type": "array",
                                "items": TEXT,
                                "description": "The collectors it claims: in its registry and, for a vendor"
                                " collector, with its credentials configured.",
                            },
                            "labels": {
                                "type": "array",
                                "items": TEXT,
                                "description": "Its KEY=VALUE labels (COLLECTOR_HUB_RUNNER_LABELS).",
                            },
                            "without_credentials": {
                                "type": "array",
                                "items": TEXT,
                                "description": "Vendor collectors it knows but does not claim: their credentials are"
                                " not configured where it runs.",
                            },
                            "capacity": {"type": "integer", "minimum": 1},
                            "running_jobs": {"type": "array", "items": ref("JobId")},
                            "started_at": ref("Timestamp"),
                            "last_heartbeat": ref("Timestamp"),
                            "stopped_at": nullable(ref("Timestamp")),
                            "live": {"type": "boolean"},
                        }
                    ),
                },
                "live_after_silence_seconds": {"type": "number"},
                "generated_at": ref("Timestamp"),
            }
        ),
    }


def operation_paths(names: Names) -> dict[str, Schema]:
    batch_id = path_id("batch_id", "BatchId")
    job_id = path_id("job_id", "JobId")
    terminal = ", ".join(sorted(TERMINAL_STATUSES))
    created = {
        **json_response("The new batch and its queued jobs (the shape of POST /api/collectors/run).", "CreatedBatch"),
        "links": {
            **links_to("batch", "getBatch", "cancelBatch"),
            **links_to("job", "getJob", "cancelJob", "reportProgress"),
        },
    }
    bad_filter = error(
        "A bad filter, named in the message: an unknown status or collector, a timestamp that does not parse, "
        "since after until, a malformed batch id, limit out of range, a cursor this server did not hand out, "
        "or an unknown query parameter."
    )
    return {
        "/api/collectors/history": {
            "get": operation(
                "getHistory",
                "Runs (jobs), newest first, filtered and paged",
                {"200": json_response("A page of runs.", "History"), "400": bad_filter, "500": SERVER_ERROR},
                parameters=history_parameters(names, DEFAULT_HISTORY),
            )
        },
        "/api/collectors/batches": {
            "get": operation(
                "listBatches",
                "Batches, newest first, with their jobs' statuses and duration; filtered and paged",
                {"200": json_response("A page of batches.", "BatchList"), "400": bad_filter, "500": SERVER_ERROR},
                parameters=history_parameters(names, DEFAULT_BATCHES),
            )
        },
        "/api/collectors/runs/batch/{batch_id}/rerun": {
            "post": operation(
                "rerunBatch",
                "Re-run a terminal batch's failed and cancelled jobs, or all of them, as a new batch",
                {
                    "201": created,
                    **BAD_BODY,
                    "404": error("No batch with this id."),
                    "409": error(
                        f"The batch has not ended ({terminal} are the ended statuses), it has no failed or cancelled "
                        "job to re-run, or a collector of it is no longer configured."
                    ),
                    "500": SERVER_ERROR,
                },
                parameters=[batch_id],
                requestBody={"required": False, "content": {"application/json": {"schema": ref("RerunRequest")}}},
            )
        },
        "/api/collectors/runs/job/{job_id}/rerun": {
            "post": operation(
                "rerunJob",
                "Re-run one terminal job as a new batch",
                {
                    "201": created,
                    **BAD_BODY,
                    "404": error("No job with this id."),
                    "409": error("The job has not ended, or its collector is no longer configured."),
                    "500": SERVER_ERROR,
                },
                parameters=[job_id],
            )
        },
        "/api/collectors/stats": {
            "get": operation(
                "getStats",
                "Per collector: runs by status, success rate, durations, queue wait, last outcomes, a series",
                {
                    "200": json_response("Statistics over the window.", "Stats"),
                    "400": error("A window out of range (1h to 90d) or malformed, or a bad collector name."),
                    "500": SERVER_ERROR,
                },
                description=(
                    "Percentiles (p50, p95, a series point's median) are read from buckets whose edges grow"
                    " by 4 %: within 2 % of an actual value, the middle of the bucket holding the"
                    " ceil(q n)-th smallest value (nearest rank); max is exact. Closed hours are summarised"
                    " once and merged, so any window costs about the same (docs/COLLECTOR_RUN_TRACKING_API.md)."
                ),
                parameters=[
                    query(
                        "window",
                        {"type": "string", "pattern": "^[0-9]{1,5}[hd]$", "default": DEFAULT_WINDOW},
                        "Hours or days back from now, 1h to 90d. Up to 48h the series is hourly, else daily.",
                    ),
                    named_collectors_query(
                        names, "Only these collectors (default: configured ones and any with runs in the window)."
                    ),
                ],
            )
        },
        "/api/runners": {
            "get": operation(
                "listRunners",
                "Runners with their last heartbeat, collectors, capacity and running jobs",
                {"200": json_response("Runners, live ones first.", "RunnerList"), "500": SERVER_ERROR},
            )
        },
    }


PART = Part(schemas=operation_schemas, paths=operation_paths)
