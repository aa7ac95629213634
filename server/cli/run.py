"""``collector-hub run NAME...``: start a batch through the HTTP API and wait for it, printing
each job's progress as it changes. Made for cron: the exit status is the batch's outcome.
Following the batch is one request (its event stream, see watch.py), not one per second: a
long run does not spend the client's rate limit.

Exit status: 0 the batch completed; 1 it failed or was cancelled (or ``--timeout`` passed
first); 2 a usage error, a request the server refused, or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from typing import Any, TextIO

import aiohttp

from collectors.contract import DEFAULT_PRIORITY
from server.cli.client import (
    EXIT_COMPLETED,
    EXIT_FAILED,
    RunCommandError,
    check_base_url,
    check_timeout,
    describe_connection_error,
)
from server.cli.main import API_KEY_ENV
from server.cli.watch import watch_batch

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    base_url: str
    collectors: list[str]
    priority: str = DEFAULT_PRIORITY
    wait: bool = True
    api_key: str | None = None
    poll_interval: float = 1.0  # checked for old scripts; the batch is followed over its event stream
    wait_timeout: float | None = None  # give up waiting (exit 1) after this many seconds
    watch: bool = False  # progress bars redrawn in place instead of one line per change


def check_interval(seconds: float) -> float:
    if not 0.1 <= seconds <= 60:
        raise RunCommandError(f"--interval must be between 0.1 and 60 seconds, got {seconds:g}")
    return seconds


class _Api:
    def __init__(self, session: aiohttp.ClientSession, options: RunOptions) -> None:
        self._session = session
        self._base = options.base_url
        self._headers = {"X-API-Key": options.api_key} if options.api_key else {}

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        """(status, JSON body or None, headers). Connection problems raise aiohttp errors."""
        headers = {**self._headers, **kwargs.pop("headers", {})}
        async with self._session.request(method, self._base + path, headers=headers, **kwargs) as response:
            body = None
            if response.status != 304:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
            return response.status, body, response.headers


def _refusal(status: int, body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return f"the server refused the request (HTTP {status}): {error or 'no error message'}"


async def run_batch(options: RunOptions, out: TextIO = sys.stdout) -> int:
    """Start the batch, then (unless told not to) follow it to its end. Returns the exit
    status; raises RunCommandError for exit status 2."""
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        api = _Api(session, options)
        try:
            status, body, _ = await api.request(
                "POST", "/api/collectors/run", json={"collectors": options.collectors, "priority": options.priority}
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RunCommandError(
                f"cannot reach the server at {options.base_url}: {describe_connection_error(exc)}"
            ) from None
        if status != 201 or not isinstance(body, dict) or "batch_id" not in body:
            raise RunCommandError(_refusal(status, body))
        batch_id = body["batch_id"]
        jobs = ", ".join(f"{job['collector']} ({job['job_id']})" for job in body.get("collectors", []))
        print(f"Batch {batch_id} queued: {jobs}", file=out, flush=True)
        if not options.wait:
            return EXIT_COMPLETED
        try:
            async with asyncio.timeout(options.wait_timeout):
                return await watch_batch(
                    options.base_url, batch_id, options.api_key, out, bars=options.watch, command="run"
                )
        except TimeoutError:
            print(
                f"Gave up waiting after {options.wait_timeout:g}s; batch {batch_id} goes on in the server",
                file=out,
                flush=True,
            )
            return EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    try:
        options = RunOptions(
            base_url=check_base_url(args.url),
            collectors=args.collectors,
            priority=args.priority,
            wait=not args.no_wait,
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            poll_interval=check_interval(args.interval),
            wait_timeout=check_timeout(args.timeout),
            watch=args.watch,
        )
        return asyncio.run(run_batch(options))
    except RunCommandError as exc:
        print(f"collector-hub run: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("collector-hub run: stopped waiting; the batch goes on in the server", file=sys.stderr)
        return 130
