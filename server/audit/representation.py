"""An audit row as JSON (``GET /api/audit``, ``collector-hub audit --json``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.api.timestamps import format_timestamp


def audit_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["audit_id"],
        "at": format_timestamp(row["at"]),
        "actor": row["actor"],
        "actor_kind": row["actor_kind"],
        "key_id": row["key_id"],
        "role": row["role"],
        "action": row["action"],
        "target_ids": list(row["target_ids"]),
        "outcome": row["outcome"],
        "status": row["status"],
        "detail": row["detail"],
        "request_id": row["request_id"],
        "client_address": row["client_address"],
    }
