"""``collector-hub progress JOB_ID STATUS PERCENT [MESSAGE]``: a progress report from a shell
collector. Kept light (no aiohttp, no server): a chatty script may run it for every page."""

from __future__ import annotations

import argparse
import sys

import psycopg2

from collectors.contract import PERCENT_RULE, percent_from_text
from collectors.progress import NotInAJobError, ProgressError, update_job_progress
from server.cli.one_line_errors import database_unreachable


def percent_argument(raw: str) -> int | None:
    """PERCENT as the shell gives it: ``-`` keeps the current value (Python's None)."""
    if raw == "-":
        return None
    try:
        return percent_from_text(raw)
    except ValueError:
        raise ProgressError(f"PERCENT must be {PERCENT_RULE}, or '-' to keep the current one; got {raw!r}") from None


def run(args: argparse.Namespace) -> int:
    try:
        percent = percent_argument(args.percent)
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
