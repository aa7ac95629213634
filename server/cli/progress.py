"""``collector-hub progress JOB_ID STATUS PERCENT [MESSAGE]``: a progress report from a shell
collector. Kept light (no aiohttp, no server): a chatty script may run it for every page."""

from __future__ import annotations

import argparse
import sys

import psycopg2

from collectors.progress import ProgressError, update_job_progress
from server.cli.console import database_unreachable


def _parse_percent(raw: str) -> int | None:
    if raw == "-":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ProgressError(f"PERCENT must be an integer from 0 to 100, or '-' for none; got {raw!r}") from None


def run(args: argparse.Namespace) -> int:
    try:
        percent = _parse_percent(args.percent)
        update_job_progress(
            args.job_id, args.status, percent, args.message, error=args.error, database_url=args.database_url
        )
    except ProgressError as exc:
        print(f"collector-hub progress: error: {exc}; nothing was recorded", file=sys.stderr)
        return 2
    except psycopg2.Error as exc:
        return database_unreachable("progress", exc)
    return 0
