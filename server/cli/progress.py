"""``collector-hub progress JOB_ID STATUS PERCENT [MESSAGE]``: a progress report from a shell
collector. Kept light (no aiohttp, no server): a chatty script may run it for every page."""

from __future__ import annotations

import argparse
import sys

import psycopg2

from collectors.progress import NotInAJobError, ProgressError, update_job_progress
from server.cli.console import database_unreachable


def _parse_percent(raw: str) -> int | None:
    """PERCENT as the shell gives it: ``-`` keeps the current value (Python's None)."""
    if raw == "-":
        return None
    try:
        percent = int(raw)
    except ValueError:
        percent = -1
    if not 0 <= percent <= 100:
        raise ProgressError(f"PERCENT must be an integer from 0 to 100, or '-' to keep the current one; got {raw!r}")
    return percent


def run(args: argparse.Namespace) -> int:
    try:
        percent = _parse_percent(args.percent)
        update_job_progress(
            args.job_id, args.status, percent, args.message, error=args.error, database_url=args.database_url
        )
    except NotInAJobError as exc:  # where it runs, not what it says: like an unreachable database
        print(f"collector-hub progress: error: {exc}; nothing was recorded", file=sys.stderr)
        return 1
    except ProgressError as exc:
        print(f"collector-hub progress: error: {exc}; nothing was recorded", file=sys.stderr)
        return 2
    except psycopg2.Error as exc:
        return database_unreachable("progress", exc)
    return 0
