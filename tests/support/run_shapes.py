"""The fields of the contract's batches and jobs (docs/COLLECTOR_RUN_TRACKING_API.md), written
once for every test that checks a body against them. The server builds the bodies in
server/runs/body_sql.py and the OpenAPI document describes them in server/runs/openapi.py;
this is the copy a test holds apart from both, so that the two cannot drift together unseen."""

from __future__ import annotations

BATCH_FIELDS = {
    "batch_id",
    "status",
    "priority",
    "progress_percent",
    "estimated_completion",
    "started_at",
    "updated_at",
    "ended_at",
    "message",
    "error",
    "collectors",
    "duration_seconds",
    "rerun_of",  # issue 12: the batch this one re-runs
    "started_by",  # issue 25: how it started (tests/test_started_by.py)
}
BATCH_JOB_FIELDS = {
    "job_name",
    "job_id",
    "collector",
    "status",
    "started_at",
    "updated_at",
    "ended_at",
    "progress_percent",
    "message",
    "error",
    "duration_seconds",
    "rerun_of",  # issue 12: the job this one re-runs
    "attempt",  # issue 24: automatic retries (tests/test_retries.py)
    "max_attempts",
}
# A job's GET: the job as its batch lists it, with its batch's summary.
JOB_FIELDS = BATCH_JOB_FIELDS | {
    "batch_id",
    "batch_status",
    "batch_progress_percent",
    "estimated_completion",
    "batch_message",
}
