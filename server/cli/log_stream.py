"""``collector-hub logs --follow``: a job's new log lines from the log's event stream, resumed
by line number after a drop, until the job ends. The stream is read line by line with the
standard library, as ``watch`` reads a batch's (watch.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from server.cli.client import (
    EXIT_COMPLETED,
    EXIT_FAILED,
    FAILURES,
    Outage,
    RunCommandError,
    failure,
    open_answer,
)
from server.cli.watch import STREAM_TIMEOUT, lines_of, sse_events

if TYPE_CHECKING:
    from server.cli.logs import Printer


def follow(base: str, job_id: str, api_key: str | None, printer: Printer) -> int | None:
    """The exit status the job's end means, or None when the stream said only that the job
    has ended (its status is then read by the caller). Reconnects (resuming by line number)
    through a short outage."""
    outage = Outage()
    path = f"/api/collectors/runs/job/{job_id}/logs/events"
    while True:
        headers = {"Accept": "text/event-stream"}
        if printer.last:
            headers["Last-Event-ID"] = str(printer.last)
        try:
            with open_answer(base, "GET", path, api_key=api_key, headers=headers, timeout=STREAM_TIMEOUT) as response:
                if response.status == 204:  # nothing more: the job has ended
                    return None
                if response.status != 200:
                    body = json.loads(response.read() or b"null")
                    error = body.get("error") if isinstance(body, dict) else None
                    if response.status < 500:
                        raise RunCommandError(f"the server refused the stream (HTTP {response.status}): {error}")
                    problem = f"HTTP {response.status}"
                else:
                    for _, event, data in sse_events(lines_of(response.body)):
                        outage.over()
                        if event == "log":
                            printer.line(json.loads(data))
                        elif event == "end":
                            return EXIT_COMPLETED if json.loads(data).get("status") == "completed" else EXIT_FAILED
                    problem = "the stream ended before the job did"
        except FAILURES as exc:
            problem = failure(base, exc)
        except ValueError as exc:
            problem = str(exc) or type(exc).__name__
        outage.failed(problem)
        outage.pause()
