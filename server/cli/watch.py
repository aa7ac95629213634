"""``collector-hub watch BATCH_ID`` (and ``run ... --watch``): live progress bars in the
terminal from the batch's Server-Sent Events stream, exiting with the batch's outcome.

On a terminal the bars are redrawn in place; when output is a file or a pipe, each change is
one line (the same lines ``run`` prints), so logs stay readable. A dropped stream (server
restart, network blip) is resumed with ``Last-Event-ID``; the server then sends the current
state only if it moved, so nothing is missed and nothing is shown twice.

Exit status: 0 completed; 1 failed or cancelled (or ``--timeout`` passed first); 2 the batch
is unknown, the server refused us, or it could not be reached for ``MAX_OUTAGE_SECONDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

import aiohttp

from collectors.contract import BATCH_ID, TERMINAL_STATUSES
from server.cli.client import (
    API_KEY_ENV,
    MAX_OUTAGE_SECONDS,
    RunCommandError,
    check_base_url,
    check_timeout,
    describe_job,
    print_outcome,
    retry_delay,
)
from server.runner.protocol import printable

BAR_WIDTH = 24
MAX_EVENT_BYTES = 1024 * 1024  # a batch body is a few KiB; anything huge is not ours
# Connect and first byte within this; an idle stream is fine (heartbeats keep it alive).
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=60)


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str | None, str, str]]:
    """(id, event, data) for each event of a text/event-stream, per the HTML standard's
    parsing rules (comments ignored, multi-line data joined with newlines)."""
    event_id: str | None = None
    event = "message"
    data: list[str] = []
    size = 0
    async for raw in response.content:
        size += len(raw)
        if size > MAX_EVENT_BYTES:
            raise RunCommandError("the server sent an event larger than 1 MiB")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield event_id, event, "\n".join(data)
            event, data, size = "message", [], 0
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id" and "\0" not in value:
            event_id = value


class Display:
    """Bars redrawn in place on a terminal; one line per change otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.live = out.isatty()
        self.drawn = 0  # lines drawn last time (live mode)
        self.shown: dict[str, str] = {}

    def update(self, batch: dict[str, Any]) -> None:
        jobs = [job for job in batch.get("collectors", []) if isinstance(job, dict)]
        if self.live:
            self._redraw(batch, jobs)
            return
        for job in jobs:
            line = describe_job(job)
            if self.shown.get(str(job.get("job_id"))) != line:
                self.shown[str(job.get("job_id"))] = line
                print(line, file=self.out, flush=True)

    def _redraw(self, batch: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        lines = [self._bar_line("batch " + str(batch.get("batch_id")), batch, width)]
        lines += [self._bar_line(str(job.get("collector") or job.get("job_name")), job, width) for job in jobs]
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)

    @staticmethod
    def _bar_line(name: str, obj: dict[str, Any], width: int) -> str:
        percent = obj.get("progress_percent")
        filled = 0 if not isinstance(percent, int) else max(0, min(BAR_WIDTH, percent * BAR_WIDTH // 100))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        figure = f"{percent:3d}%" if isinstance(percent, int) else "  ?%"
        text = obj.get("error") if obj.get("status") == "failed" and obj.get("error") else obj.get("message")
        # Server text is printed as text: control characters could move the cursor or worse.
        text = printable(str(text or ""))
        line = f"{printable(name)[:22]:<22} [{bar}] {figure} {printable(str(obj.get('status'))):<9} {text}"
        return line[: max(20, width - 1)]


async def watch_batch(
    base_url: str,
    batch_id: str,
    api_key: str | None = None,
    out: TextIO = sys.stdout,
    session: aiohttp.ClientSession | None = None,
) -> int:
    """Follow the batch's event stream to its terminal state; returns the exit status."""
    owned = session is None
    session = session or aiohttp.ClientSession(timeout=STREAM_TIMEOUT)
    try:
        return await _watch(session, base_url, batch_id, api_key, out)
    finally:
        if owned:
            await session.close()


async def _watch(session: aiohttp.ClientSession, base_url: str, batch_id: str, api_key: str | None, out: TextIO) -> int:
    display = Display(out)
    url = f"{base_url}/api/collectors/runs/batch/{batch_id}/events"
    last_id: str | None = None
    loop = asyncio.get_running_loop()
    failing_since: float | None = None
    attempt = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["X-API-Key"] = api_key
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        problem: str
        try:
            async with session.get(url, headers=headers, timeout=STREAM_TIMEOUT) as response:
                if response.status != 200:
                    problem = await _refused(response)
                else:
                    async for event_id, event, data in sse_events(response):
                        failing_since, attempt = None, 0
                        if event_id is not None:
                            last_id = event_id
                        if event != "batch":
                            continue
                        try:
                            batch = json.loads(data)
                        except ValueError:
                            continue
                        display.update(batch)
                        if batch.get("status") in TERMINAL_STATUSES:
                            return print_outcome(batch, out)
                    problem = "the stream ended before the batch did"
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
        # The server is restarting, or the network blinked: resume from the last event id.
        failing_since = failing_since or loop.time()
        if loop.time() - failing_since > MAX_OUTAGE_SECONDS:
            raise RunCommandError(f"lost contact with the server for {MAX_OUTAGE_SECONDS:g}s: {problem}")
        attempt += 1
        await asyncio.sleep(min(5.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))


async def _refused(response: aiohttp.ClientResponse) -> str:
    """A non-200 answer: raise for the ones retrying cannot fix, else describe it."""
    try:
        body = await response.json(content_type=None)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if 400 <= response.status < 500 and response.status not in (408, 429):
        raise RunCommandError(f"the server refused the stream (HTTP {response.status}): {error or 'no error message'}")
    if response.status == 429:
        await asyncio.sleep(retry_delay(response.headers.get("Retry-After")))
    return f"HTTP {response.status}"


def run(args: argparse.Namespace) -> int:
    try:
        if not BATCH_ID.fullmatch(args.batch_id):
            raise RunCommandError(f"BATCH_ID must look like bc_12345678, got {args.batch_id!r}")
        base_url = check_base_url(args.url)
        timeout = check_timeout(args.timeout)
        api_key = args.api_key or os.environ.get(API_KEY_ENV) or None

        async def watch() -> int:
            try:
                async with asyncio.timeout(timeout):
                    return await watch_batch(base_url, args.batch_id, api_key)
            except TimeoutError:
                print(f"Gave up waiting after {timeout:g}s; the batch goes on in the server", flush=True)
                return 1

        return asyncio.run(watch())
    except RunCommandError as exc:
        print(f"collector-hub watch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("collector-hub watch: stopped watching; the batch goes on in the server", file=sys.stderr)
        return 130
