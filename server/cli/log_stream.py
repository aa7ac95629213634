"""``collector-hub logs --follow``: a job's new log lines from the log's event stream, resumed
by line number after a drop, until the job ends. Imported by logs.py only when it follows:
this is the part of ``logs`` that needs aiohttp (the stored lines are read without it)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp

from server.cli.client import (
    EXIT_COMPLETED,
    EXIT_FAILED,
    MAX_OUTAGE_SECONDS,
    RunCommandError,
    api_headers,
    reconnect_delay,
)
from server.cli.watch import STREAM_TIMEOUT, sse_events

if TYPE_CHECKING:
    from server.cli.logs import Printer


def follow(base: str, job_id: str, api_key: str | None, printer: Printer) -> int | None:
    """The exit status the job's end means, or None when the stream said only that the job
    has ended (its status is then read by the caller)."""

    async def follow_in_a_session() -> int | None:
        async with aiohttp.ClientSession() as session:
            return await _follow(session, base, job_id, api_key, printer)

    return asyncio.run(follow_in_a_session())


async def _follow(
    session: aiohttp.ClientSession, base: str, job_id: str, api_key: str | None, printer: Printer
) -> int | None:
    """The event stream to the job's end; reconnects (resuming by line number) through a
    short outage."""
    loop = asyncio.get_running_loop()
    failing_since: float | None = None
    attempt = 0
    url = f"{base}/api/collectors/runs/job/{job_id}/logs/events"
    while True:
        headers = {"Accept": "text/event-stream", **api_headers(api_key)}
        if printer.last:
            headers["Last-Event-ID"] = str(printer.last)
        try:
            async with session.get(url, headers=headers, timeout=STREAM_TIMEOUT) as response:
                if response.status == 204:  # nothing more: the job has ended
                    return None
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
        await asyncio.sleep(reconnect_delay(attempt))
