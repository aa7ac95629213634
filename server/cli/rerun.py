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

from collectors.contract import BATCH_ID
from server.cli.client import API_KEY_ENV, EXIT_COMPLETED, RunCommandError, check_base_url
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
