"""The JSON shapes of the webhook API, built from table rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from server.api.timestamps import format_timestamp

Row = Mapping[str, Any]


def webhook_json(row: Row) -> dict[str, Any]:
    """A receiver as ``GET /api/webhooks/{id}`` shows it: never its secret."""
    return {
        "id": row["webhook_id"],
        "url": row["url"],
        "events": list(row["events"]),
        "collectors": None if row["collectors"] is None else list(row["collectors"]),
        "variance_digest": row["variance_digest"],
        "description": row["description"],
        "enabled": row["enabled"],
        "disabled_reason": row["disabled_reason"],
        "disabled_at": format_timestamp(row["disabled_at"]),
        "failing_since": format_timestamp(row["failing_since"]),
        "source": row["source"],
        "previous_secret_expires_at": format_timestamp(row["previous_secret_expires_at"]),
        "created_at": format_timestamp(row["created_at"]),
        "updated_at": format_timestamp(row["updated_at"]),
    }


def webhook_with_secret_json(row: Row) -> dict[str, Any]:
    """Creation and rotation answers: the only places a secret is ever shown."""
    return {**webhook_json(row), "secret": row["secret"]}


def attempt_json(row: Row) -> dict[str, Any]:
    return {
        "attempt": row["attempt_number"],
        "attempted_at": format_timestamp(row["attempted_at"]),
        "url": row["url"],
        "duration_ms": row["duration_ms"],
        "response_status": row["response_status"],
        "response_body": row["response_body"],
        "error": row["error"],
    }


def delivery_json(row: Row, attempts: Sequence[Row]) -> dict[str, Any]:
    pending = row["status"] == "pending"
    return {
        "delivery_id": row["delivery_id"],
        "webhook_id": row["webhook_id"],
        "event": row["event"],
        "batch_id": row["batch_id"],
        "job_id": row["job_id"],
        "collector": row["collector"],
        "test": row["test"],
        "status": row["status"],
        "created_at": format_timestamp(row["created_at"]),
        "next_attempt_at": format_timestamp(row["next_attempt_at"]) if pending else None,
        "completed_at": format_timestamp(row["completed_at"]),
        "attempt_count": row["attempt_count"],
        "attempts": [attempt_json(a) for a in attempts],
    }
