"""``collector-hub rerun BATCH_ID [--failed] [--watch]``: run a batch again as a new batch (all
its jobs, or with ``--failed`` its failed and cancelled ones) and print it; with ``--watch``,
follow the new batch's progress bars to its end.

Exit status: 0 the new batch was queued (with ``--watch``: it completed); 1 with ``--watch``,
it failed or was cancelled; 2 a usage error, a refusal (an unknown batch, one still running,
nothing failed to re-run), or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from collectors.contract import BATCH_ID, RERUN_STATUSES, TERMINAL_STATUSES
from server.cli.client import EXIT_COMPLETED, RunCommandError, Unreachable, check_base_url, request
from server.cli.main import API_KEY_ENV
from server.cli.watch import follow_batch


def rerun_batch(base: str, batch_id: str, only: str, api_key: str | None, *, watch: bool, out: TextIO) -> int:
    try:
        answer = request(base, "POST", f"/api/collectors/runs/batch/{batch_id}/rerun", api_key=api_key,
                         body={"only": only})  # fmt: skip
        status, body = answer.status, answer.json()
        if status == 409 and only == "failed":
            _explain_nothing_failed(base, batch_id, api_key)
    except (Unreachable, ValueError) as exc:
        raise RunCommandError(f"cannot reach the server at {base}: {str(exc) or type(exc).__name__}") from None
    if status != 201 or not isinstance(body, dict) or "batch_id" not in body:
        error = body.get("error") if isinstance(body, dict) else None
        raise RunCommandError(f"the server refused the re-run (HTTP {status}): {error or 'no error message'}")
    jobs = ", ".join(f"{job['collector']} ({job['job_id']})" for job in body.get("collectors", []))
    print(f"Batch {body['batch_id']} queued, re-running {batch_id}: {jobs}", file=out, flush=True)
    if not watch:
        return EXIT_COMPLETED
    return follow_batch(base, body["batch_id"], api_key, out=out)


def _explain_nothing_failed(base: str, batch_id: str, api_key: str | None) -> None:
    """After a 409 to ``--failed``: when the batch ended with no failed or cancelled job, say so
    in the command's terms (the server's answer names the API's ``{"only": "all"}``); any other
    refusal (a batch still running) keeps the server's words."""
    answer = request(base, "GET", f"/api/collectors/runs/batch/{batch_id}", api_key=api_key)
    if answer.status != 200:
        return
    batch = answer.json()
    if not isinstance(batch, dict) or batch.get("status") not in TERMINAL_STATUSES:
        return
    jobs = batch.get("collectors") or []
    if any(isinstance(job, dict) and job.get("status") in RERUN_STATUSES for job in jobs):
        return
    raise RunCommandError(
        f"batch {batch_id} {batch['status']} with no failed or cancelled job, so --failed has nothing to"
        f" re-run; run every job again with: collector-hub rerun {batch_id}"
    )


def run(args: argparse.Namespace) -> int:
    try:
        if not BATCH_ID.fullmatch(args.batch_id):
            raise RunCommandError(f"BATCH_ID must look like bc_12345678, got {args.batch_id!r}")
        base = check_base_url(args.url)
        api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
        only = "failed" if args.failed else "all"
        return rerun_batch(base, args.batch_id, only, api_key, watch=args.watch, out=sys.stdout)
    except RunCommandError as exc:
        print(f"collector-hub rerun: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
