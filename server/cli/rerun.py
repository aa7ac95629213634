"""``collector-hub rerun BATCH_ID [--failed] [--watch]``: run a batch again as a new batch (all
its jobs, or with ``--failed`` its failed and cancelled ones) and print it; with ``--watch``,
follow the new batch's progress bars to its end.

Exit status: 0 the new batch was queued (with ``--watch``: it completed); 1 with ``--watch``,
it failed or was cancelled; 2 a usage error, a refusal (an unknown batch, one still running,
nothing failed to re-run), or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TextIO

import aiohttp

from collectors.contract import BATCH_ID, RERUN_STATUSES, TERMINAL_STATUSES
from server.cli.client import EXIT_COMPLETED, RunCommandError, check_base_url
from server.cli.main import API_KEY_ENV
from server.cli.watch import watch_batch

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


async def rerun_batch(base: str, batch_id: str, only: str, api_key: str | None, *, watch: bool, out: TextIO) -> int:
    headers = {"X-API-Key": api_key} if api_key else {}
    url = f"{base}/api/collectors/runs/batch/{batch_id}/rerun"
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        try:
            async with session.post(url, json={"only": only}, headers=headers) as response:
                status = response.status
                body = await response.json(content_type=None)
            if status == 409 and only == "failed":
                await _explain_nothing_failed(session, base, batch_id, headers)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RunCommandError(f"cannot reach the server at {base}: {str(exc) or type(exc).__name__}") from None
        if status != 201 or not isinstance(body, dict) or "batch_id" not in body:
            error = body.get("error") if isinstance(body, dict) else None
            raise RunCommandError(f"the server refused the re-run (HTTP {status}): {error or 'no error message'}")
        jobs = ", ".join(f"{job['collector']} ({job['job_id']})" for job in body.get("collectors", []))
        print(f"Batch {body['batch_id']} queued, re-running {batch_id}: {jobs}", file=out, flush=True)
        if not watch:
            return EXIT_COMPLETED
        return await watch_batch(base, body["batch_id"], api_key, out)


async def _explain_nothing_failed(
    session: aiohttp.ClientSession, base: str, batch_id: str, headers: dict[str, str]
) -> None:
    """After a 409 to ``--failed``: when the batch ended with no failed or cancelled job, say so
    in the command's terms (the server's answer names the API's ``{"only": "all"}``); any other
    refusal (a batch still running) keeps the server's words."""
    async with session.get(f"{base}/api/collectors/runs/batch/{batch_id}", headers=headers) as response:
        if response.status != 200:
            return
        batch = await response.json(content_type=None)
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
        return asyncio.run(rerun_batch(base, args.batch_id, only, api_key, watch=args.watch, out=sys.stdout))
    except RunCommandError as exc:
        print(f"collector-hub rerun: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
