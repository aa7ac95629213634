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
import importlib
import os
import re
import sys
from typing import Any, TextIO
from urllib.parse import urlencode

from collectors.contract import JOB_ID, MAX_LOG_PAGE
from server.cli.client import EXIT_COMPLETED, EXIT_FAILED, RunCommandError, Unreachable, check_base_url, request
from server.cli.main import API_KEY_ENV
from server.runner.protocol import printable

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


def _get_json(base: str, path: str, api_key: str | None, params: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        answer = request(base, "GET", path, api_key=api_key, params=params)
        body = answer.json()
    except (Unreachable, ValueError) as exc:
        url = base + path + ("?" + urlencode(params) if params else "")
        raise RunCommandError(f"cannot read {url}: {str(exc) or type(exc).__name__}") from None
    if answer.status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        raise RunCommandError(f"the server refused the request (HTTP {answer.status}): {error or 'no error message'}")
    return body


def print_stored(base: str, job_id: str, api_key: str | None, printer: Printer) -> str:
    """Every stored line, page by page; returns the job's status."""
    after = printer.last
    while True:
        params = {"after": str(after), "limit": str(MAX_LOG_PAGE)}
        body = _get_json(base, f"/api/collectors/runs/job/{job_id}/logs", api_key, params)
        printer.dropped(int(body.get("dropped_lines") or 0))
        for line in body.get("lines", []):
            printer.line(line)
        if not body.get("lines"):
            return str(body.get("status"))
        after = int(body["next_after"])


def job_outcome(base: str, job_id: str, api_key: str | None) -> int:
    """The exit status the job's end means."""
    job = _get_json(base, f"/api/collectors/runs/job/{job_id}", api_key)
    return EXIT_COMPLETED if job.get("status") == "completed" else EXIT_FAILED


def show_logs(base: str, job_id: str, api_key: str | None, *, follow_log: bool, out: TextIO, err: TextIO) -> int:
    # The stream's module is imported only with --follow (it imports this module's Printer for
    # its types), and then first, so that the stream opens as soon as the stored lines are printed.
    follower = importlib.import_module("server.cli.log_stream") if follow_log else None
    printer = Printer(out, err)
    print_stored(base, job_id, api_key, printer)
    if follower is None:
        return EXIT_COMPLETED
    outcome: int | None = follower.follow(base, job_id, api_key, printer)
    return job_outcome(base, job_id, api_key) if outcome is None else outcome


def run(args: argparse.Namespace) -> int:
    try:
        if not JOB_ID.fullmatch(args.job_id):
            raise RunCommandError(f"JOB_ID must look like ni_12345678, got {args.job_id!r}")
        base = check_base_url(args.url)
        api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
        return show_logs(base, args.job_id, api_key, follow_log=args.follow, out=sys.stdout, err=sys.stderr)
    except RunCommandError as exc:
        print(f"collector-hub logs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
