"""JSON log lines (``COLLECTOR_HUB_LOG_FORMAT=json``): one object per line, for log shippers.

Fields: ``time`` (UTC, like the API's timestamps), ``level``, ``logger``, ``message``, the
access log's structured fields when present (``request_id``, ``method``, ``path``, ...), and
``exception`` for a traceback. Messages are the same text as the plain format; nothing is
added that the plain format would not show.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

EXTRA_FIELDS = ("request_id", "remote", "method", "path", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in EXTRA_FIELDS:
            if field in record.__dict__:
                line[field] = record.__dict__[field]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
