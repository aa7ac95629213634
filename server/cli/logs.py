"""``collector-hub logs JOB_ID [--follow]``: a job's log in the terminal.

Lines the collector wrote on stdout go to stdout, its stderr lines to stderr, and the runner's
own notes to stderr with a ``[collector-hub]`` prefix, so ``2>/dev/null`` keeps just what the
collector printed. Escape sequences and other control characters are stripped, as ``watch``
does with job messages: a log must not be able to move the cursor or retitle the terminal.

Without ``--follow`` it prints what is stored and exits 0. With ``--follow`` it prints the
stored lines, then new ones as they come (the log's event stream, resumed by line number if it
drops), until the job ends; the exit status is then the job's outcome (0 completed, 1 failed
or cancelled). 2: unknown job, refused, or the server could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
from typing import Any, TextIO

import aiohttp

from collectors.contract import JOB_ID, MAX_LOG_PAGE
from server.cli.client import (
    EXIT_COMPLETED,
    EXIT_FAILED,
    MAX_OUTAGE_SECONDS,
    RunCommandError,
    check_base_url,
)
from server.cli.main import API_KEY_ENV
from server.cli.watch import STREAM_TIMEOUT, sse_events
from server.runner.protocol import printable

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
# CSI (colours, cursor moves), OSC (titles, hyperlinks) and two-character escapes.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")


def terminal_text(text: str) -> str:
    """``text`` without escape sequences and control characters."""
    return printable(_ESCAPES.sub("", text))


class Printer:
    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.last = 0

    def line(self, line: dict[str, Any]) -> None:
        number = line.get("line")
        if not isinstance(number, int) or number <= self.last:
            return  # already shown (a resumed stream may repeat nothing, but be sure)
        self.last = number
        text = terminal_text(str(line.get("text", "")))
        stream = line.get("stream")
        if stream == "stdout":
            print(text, file=self.out, flush=True)
        elif stream == "system":
            print(f"[collector-hub] {text}", file=self.err, flush=True)
        else:
            print(text, file=self.err, flush=True)

    def dropped(self, count: int) -> None:
        if count > 0 and self.last == 0:
            print(f"[collector-hub] {count} earlier line(s) were dropped: the log keeps the newest", file=self.err)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}


async def _get_json(session: aiohttp.ClientSession, url: str, api_key: str | None) -> dict[str, Any]:
    try:
        async with session.get(url, headers=_headers(api_key), timeout=REQUEST_TIMEOUT) as response:
            body = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise RunCommandError(f"cannot read {url}: {str(exc) or type(exc).__name__}") from None
    if status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        raise RunCommandError(f"the server refused the request (HTTP {status}): {error or 'no error message'}")
    return body


async def print_stored(
    session: aiohttp.ClientSession, base: str, job_id: str, api_key: str | None, printer: Printer
) -> str:
    """Every stored line, page by page; returns the job's status."""
    after = printer.last
    while True:
        url = f"{base}/api/collectors/runs/job/{job_id}/logs?after={after}&limit={MAX_LOG_PAGE}"
        body = await _get_json(session, url, api_key)
        printer.dropped(int(body.get("dropped_lines") or 0))
        for line in body.get("lines", []):
            printer.line(line)
        if not body.get("lines"):
            return str(body.get("status"))
        after = int(body["next_after"])


async def follow(session: aiohttp.ClientSession, base: str, job_id: str, api_key: str | None, printer: Printer) -> int:
    """The event stream to the job's end; reconnects (resuming by line number) through a
    short outage. Returns the exit status."""
    loop = asyncio.get_running_loop()
    failing_since: float | None = None
    attempt = 0
    url = f"{base}/api/collectors/runs/job/{job_id}/logs/events"
    while True:
        headers = {"Accept": "text/event-stream", **_headers(api_key)}
        if printer.last:
            headers["Last-Event-ID"] = str(printer.last)
        try:
            async with session.get(url, headers=headers, timeout=STREAM_TIMEOUT) as response:
                if response.status == 204:  # nothing more: the job has ended
                    return await _outcome(session, base, job_id, api_key)
                if response.status != 200:
                    body = await response.json(content_type=None)
                    error = body.get("error") if isinstance(body, dict) else None
                    if response.status < 500:
                        raise RunCommandError(f"the server refused the stream (HTTP {response.status}): {error}")
                    problem = f"HTTP {response.status}"
                else:
                    async for _, event, data in sse_events(response):
                        failing_since, attempt = None, 0
                        if event == "log":
                            printer.line(json.loads(data))
                        elif event == "end":
                            return EXIT_COMPLETED if json.loads(data).get("status") == "completed" else EXIT_FAILED
                    problem = "the stream ended before the job did"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            problem = str(exc) or type(exc).__name__
        failing_since = failing_since or loop.time()
        if loop.time() - failing_since > MAX_OUTAGE_SECONDS:
            raise RunCommandError(f"lost contact with the server for {MAX_OUTAGE_SECONDS:g}s: {problem}")
        attempt += 1
        await asyncio.sleep(min(5.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))


async def _outcome(session: aiohttp.ClientSession, base: str, job_id: str, api_key: str | None) -> int:
    job = await _get_json(session, f"{base}/api/collectors/runs/job/{job_id}", api_key)
    return EXIT_COMPLETED if job.get("status") == "completed" else EXIT_FAILED


async def show_logs(base: str, job_id: str, api_key: str | None, *, follow_log: bool, out: TextIO, err: TextIO) -> int:
    printer = Printer(out, err)
    async with aiohttp.ClientSession() as session:
        await print_stored(session, base, job_id, api_key, printer)
        if not follow_log:
            return EXIT_COMPLETED
        return await follow(session, base, job_id, api_key, printer)


def run(args: argparse.Namespace) -> int:
    try:
        if not JOB_ID.fullmatch(args.job_id):
            raise RunCommandError(f"JOB_ID must look like ni_12345678, got {args.job_id!r}")
        base = check_base_url(args.url)
        api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
        return asyncio.run(
            show_logs(base, args.job_id, api_key, follow_log=args.follow, out=sys.stdout, err=sys.stderr)
        )
    except RunCommandError as exc:
        print(f"collector-hub logs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
