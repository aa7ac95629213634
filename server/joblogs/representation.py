"""The JSON shape of a job's log line, as ``GET .../logs`` lists it and the live tail sends it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.api.timestamps import format_timestamp

Row = Mapping[str, Any]


def log_line_json(line: Row) -> dict[str, Any]:
    """One line of a job's log."""
    return {
        "line": line["line_no"],
        "stream": line["stream"],
        "progress": line["progress"],
        "time": format_timestamp(line["logged_at"]),
        "text": line["text"],
    }
