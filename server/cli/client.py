"""What ``collector-hub run`` and ``collector-hub watch`` share as clients of the server: exit
statuses, argument checks, how a job and a batch's outcome are printed, how long a 429 waits."""

from __future__ import annotations

import os
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp

from collectors.retry_after import parse_retry_after
from server.runner.protocol import printable

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# How long polling may keep failing (server restarting, network blip) before giving up.
MAX_OUTAGE_SECONDS = 30.0
MAX_RETRY_AFTER = 60.0  # a 429 never parks the CLI for longer than this
DEFAULT_RETRY_AFTER = 5.0  # when the 429 gives no usable Retry-After


class RunCommandError(Exception):
    """Something that ends the command with exit status 2; the message says what."""


def check_base_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash, or RunCommandError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise RunCommandError(f"--url must be an http:// or https:// URL such as http://127.0.0.1:5400, got {url!r}")
    try:
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise RunCommandError(f"--url has an invalid port: {url!r}") from None
    return url.rstrip("/")


def check_timeout(seconds: float | None) -> float | None:
    if seconds is not None and not 0 < seconds <= 7 * 24 * 3600:
        raise RunCommandError(f"--timeout must be a number of seconds above 0, got {seconds:g}")
    return seconds


def describe_job(job: dict[str, Any]) -> str:
    """``[demo de_12345678] running 30% Processing page 3/10``. Server text goes through
    ``printable``: an escape sequence in a job message must not reach the terminal."""
    percent = job.get("progress_percent")
    parts = [f"[{job.get('collector') or job.get('job_name')} {job.get('job_id')}]", str(job.get("status"))]
    if percent is not None:
        parts.append(f"{percent}%")
    if job.get("message"):
        parts.append(str(job["message"]))
    line = printable(" ".join(parts))
    if job.get("status") == "failed" and job.get("error"):
        line += "\n" + error_lines(str(job["error"]))
    return line


ERROR_LABEL = "    error: "


def error_lines(error: str) -> str:
    """A job's error under its job line, a line per line of it (a traceback keeps its shape):
    the first after ``error:``, the others below it, their own indentation kept."""
    lines = [printable(text.expandtabs(4)).rstrip() for text in error.splitlines()] or [""]
    indent = " " * len(ERROR_LABEL)
    return "\n".join([ERROR_LABEL + lines[0], *(indent + text if text else "" for text in lines[1:])])


def describe_connection_error(exc: BaseException) -> str:
    """A failed connection in a few plain words ("connection refused"), without aiohttp's
    ``ssl:default [Connect call failed ...]`` decoration."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        errno = exc.os_error.errno
        reason = os.strerror(errno) if errno else (exc.os_error.strerror or type(exc.os_error).__name__)
        return f"cannot connect to {exc.host}:{exc.port}: {reason[:1].lower() + reason[1:]}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def retry_delay(retry_after: str | None) -> float:
    """How long the CLI waits after a 429: the server's ``Retry-After``, at most a minute."""
    delay = parse_retry_after(retry_after, cap=MAX_RETRY_AFTER)
    return DEFAULT_RETRY_AFTER if delay is None else delay


def print_outcome(batch: dict[str, Any], out: TextIO) -> int:
    """The batch's last line, and the exit status it means."""
    status = batch["status"]
    took = batch.get("duration_seconds")
    summary = f"Batch {batch['batch_id']} {status}" + (f" in {took}s" if took is not None else "")
    if batch.get("message"):
        summary += f": {batch['message']}"
    print(summary, file=out, flush=True)
    return EXIT_COMPLETED if status == "completed" else EXIT_FAILED
