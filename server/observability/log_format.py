"""JSON log lines (``COLLECTOR_HUB_LOG_FORMAT=json``): one object per line, for log shippers.

Fields: ``time`` (UTC, like the API's timestamps), ``level``, ``logger``, ``message``, the
access log's structured fields when present (``request_id``, ``method``, ``path``, ...), and
``exception`` for a traceback. Messages are the same text as the plain format; nothing is
added that the plain format would not show. The request id gets onto the records of a request
through ``RequestIdFilter``, here (not in ``access_log``) so the CLI's logging set-up does not
import aiohttp.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

EXTRA_FIELDS = ("request_id", "remote", "method", "path", "status", "duration_ms")

# The id of the request being handled, for every log line written while handling it.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records logged during a request (the JSON format shows it), so an
    error logged deep inside can be matched to its access line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id
        return True


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
