"""What the commands that talk to the server share: exit statuses, argument checks, the one
request and its answer, how a failed connection is said, how a job and a batch's outcome are
printed, how long a 429 waits.

A request and its answer go through the standard library (``request``; ``open_answer`` for an
answer read as it comes, such as an event stream), not aiohttp or asyncio: importing them is
most of the CPU a command spends starting, and a command that sends a request and prints the
answer, or follows a live stream line by line (``watch``, ``run`` while it waits, ``logs
--follow``, ``rerun --watch``), has no use for them (tests/test_cli_imports.py).
"""

from __future__ import annotations

import base64
import email.message
import http.client
import json
import os
import random
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import IO, Any, NamedTuple, TextIO
from urllib.parse import quote, unquote, urlencode, urlsplit

from collectors.retry_after import parse_retry_after
from server.runner.protocol import printable

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# How long polling may keep failing (server restarting, network blip) before giving up.
MAX_OUTAGE_SECONDS = 30.0
MAX_RETRY_AFTER = 60.0  # a 429 never parks the CLI for longer than this
DEFAULT_RETRY_AFTER = 5.0  # when the 429 gives no usable Retry-After
REQUEST_TIMEOUT = 30.0  # seconds a request may wait for the server (to connect, and for each read)
# Like aiohttp's client (trust_env off), the proxy variables of the environment are not used.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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


def connect_failure(host: str, port: int | None, error: OSError) -> str:
    """A failed connection in a few plain words: ``cannot connect to HOST:PORT: connection
    refused``, or ``no answer in time``."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, ssl.SSLError):
        reason = getattr(error, "verify_message", None) or error.reason or str(error)
    elif isinstance(error, socket.gaierror) or not error.errno:
        reason = error.strerror or type(error).__name__
    else:
        reason = os.strerror(error.errno)
    return f"cannot connect to {host}:{port}: {reason[:1].lower() + reason[1:]}"


class Unreachable(Exception):
    """A request that got no answer; the message says why in plain words."""


class Answer(NamedTuple):
    """The server's answer to ``request``, whatever its status. (No dataclass in the CLI's
    modules: ``dataclasses`` imports ``inspect``, about a fifth of a command's start.)"""

    status: int
    reason: str
    headers: email.message.Message
    content: bytes

    def json(self) -> Any:
        """The body as JSON; None when it is empty; ValueError when it is not JSON."""
        return json.loads(self.content) if self.content.strip() else None


def api_headers(api_key: str | None) -> dict[str, str]:
    """The key, when there is one, as the server expects it."""
    return {"X-API-Key": api_key} if api_key else {}


def _outgoing(
    base_url: str, method: str, path: str, api_key: str | None, body: Any, params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
) -> urllib.request.Request:  # fmt: skip
    parts = urlsplit(base_url)
    host = parts.netloc.rpartition("@")[2]
    url = f"{parts.scheme}://{host}" + quote(parts.path + path, safe="/%:@!$&'()*+,;=~")
    if params:
        url += "?" + urlencode(params, quote_via=quote)
    sent = {**api_headers(api_key), **(headers or {})}
    if parts.username is not None:  # user:password@ in --url is sent as Basic auth, as aiohttp did
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode("latin-1", "replace")
        sent["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    return urllib.request.Request(url, data=data, headers=sent, method=method)


def failure(base_url: str, exc: Exception) -> str:
    """Why a request to ``base_url`` got no (whole) answer, in a few plain words."""
    if isinstance(exc, urllib.error.URLError):
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        reason = exc.reason
        return connect_failure(parts.hostname or "", port, reason) if isinstance(reason, OSError) else str(reason)
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


# What ``failure`` describes: every way a request or the reading of its answer can fail.
FAILURES = (urllib.error.URLError, OSError, http.client.HTTPException)


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    api_key: str | None = None,
    body: Any = None,
    params: Mapping[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Answer:
    """``METHOD base_url+path`` with ``body`` as JSON; the answer whatever its status (redirects
    followed, https certificates verified), or Unreachable."""
    try:
        with open_answer(base_url, method, path, api_key=api_key, body=body, params=params, timeout=timeout) as opened:
            return Answer(opened.status, opened.reason, opened.headers, opened.read())
    except FAILURES as exc:
        raise Unreachable(failure(base_url, exc)) from None


class OpenAnswer:
    """An answer whose body is still to be read (a stream is read line by line, as it comes);
    ``with`` closes it."""

    def __init__(self, status: int, reason: str, headers: email.message.Message, body: IO[bytes]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def read(self) -> bytes:
        return self.body.read()

    def __enter__(self) -> OpenAnswer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.body.close()


def open_answer(
    base_url: str,
    method: str,
    path: str,
    *,
    api_key: str | None = None,
    body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> OpenAnswer:
    """The answer whatever its status, its body unread; raises one of FAILURES. ``timeout``
    bounds the connection and each read."""
    outgoing = _outgoing(base_url, method, path, api_key, body, params, headers)
    try:
        response = _OPENER.open(outgoing, timeout=timeout)
    except urllib.error.HTTPError as refusal:  # an answer too, with a status of 400 or more
        return OpenAnswer(refusal.code, str(refusal.reason), refusal.headers, refusal)
    return OpenAnswer(response.status, response.reason, response.headers, response)


def reconnect_delay(attempt: int) -> float:
    """How long a command following a stream waits before its ``attempt``-th reconnection:
    doubling from half a second, at most 5 s, with jitter so that clients cut off together do
    not all come back at once."""
    return min(5.0, 0.25 * 2.0**attempt) * random.uniform(0.5, 1.0)


class Outage:
    """A stream follower's time without contact with the server (``watch``, ``logs --follow``):
    ``failed`` after each failure, ``over`` once it hears from the server again."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.attempt = 0  # reconnections since contact was lost

    def failed(self, problem: str) -> int:
        """Count a failure: the number of the reconnection to make, or RunCommandError once
        the server has been out of reach for MAX_OUTAGE_SECONDS."""
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since > MAX_OUTAGE_SECONDS:
            raise RunCommandError(f"lost contact with the server for {MAX_OUTAGE_SECONDS:g}s: {problem}")
        self.attempt += 1
        return self.attempt

    def pause(self) -> None:
        """Wait before the reconnection ``failed`` counted (reconnect_delay)."""
        time.sleep(reconnect_delay(self.attempt))

    def over(self) -> bool:
        """Contact again; whether there had been a failure."""
        had_failed = self.attempt > 0
        self.since, self.attempt = None, 0
        return had_failed


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
