"""``collector-hub watch BATCH_ID`` (and ``run``, ``rerun --watch``): follow a batch over its
Server-Sent Events stream, exiting with the batch's outcome. One request follows the whole
run, so following costs one unit of the client's rate limit, not one per second.

On a terminal ``watch`` (and ``run --watch``) redraws bars in place; ``run``, and any output
that is a file or a pipe, prints one line per change, so logs stay readable. A dropped stream
(server restart, network blip) is said at once on stderr and resumed with ``Last-Event-ID``;
the server then sends the current state only if it moved, so nothing is missed and nothing is
shown twice. Where the stream cannot work (a proxy that buffers or cuts it), the batch is
long-polled instead.

The stream is plain HTTP read line by line with the standard library (server/cli/client.py),
not aiohttp, whose import cost each waiting ``run`` more CPU than the rest of it.

Exit status: 0 completed; 1 failed or cancelled (or ``--timeout`` passed first); 2 the batch
is unknown, the server refused us, or it could not be reached for ``MAX_OUTAGE_SECONDS``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, TextIO

from collectors.contract import BATCH_ID, TERMINAL_STATUSES
from server.cli.client import (
    EXIT_FAILED,
    FAILURES,
    OpenAnswer,
    Outage,
    RunCommandError,
    check_base_url,
    check_timeout,
    describe_job,
    failure,
    open_answer,
    print_outcome,
    retry_delay,
)
from server.cli.main import API_KEY_ENV
from server.runner.protocol import printable

BAR_WIDTH = 24
MAX_EVENT_BYTES = 1024 * 1024  # a batch body is a few KiB; anything huge is not ours
# Connect, and each read, within this; an idle stream is fine (heartbeats keep it alive).
STREAM_TIMEOUT = 60.0
# Streams that end before their first event (every stream starts with the current state)
# before following by long-poll instead.
STREAMS_BEFORE_POLLING = 2
LONG_POLL_SECONDS = 30  # the server's most
POLL_TIMEOUT = LONG_POLL_SECONDS + 15


def lines_of(body: IO[bytes]) -> Iterator[bytes]:
    """The body's lines as they arrive, none longer than an event may be."""
    return iter(functools.partial(body.readline, MAX_EVENT_BYTES + 1), b"")


def sse_events(lines: Iterable[bytes]) -> Iterator[tuple[str | None, str, str]]:
    """(id, event, data) for each event of a text/event-stream's ``lines``, per the HTML
    standard's parsing rules (comments ignored, multi-line data joined with newlines)."""
    event_id: str | None = None
    event = "message"
    data: list[str] = []
    size = 0
    for raw in lines:
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

    def __init__(self, out: TextIO, *, bars: bool = True) -> None:
        self.out = out
        self.live = bars and out.isatty()
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
        return fit(line, max(20, width - 1))


def fit(line: str, width: int) -> str:
    """``line`` in ``width`` characters, cut between words (with "…") rather than mid-word."""
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    space = cut.rfind(" ")
    if space > width // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def follow_until_done(
    base_url: str,
    batch_id: str,
    api_key: str | None = None,
    out: TextIO = sys.stdout,
    *,
    bars: bool = True,
    err: TextIO = sys.stderr,
    command: str = "watch",
) -> int:
    """Follow the batch to its terminal state; returns the exit status. ``bars=False`` prints
    one line per change even on a terminal (``run`` without ``--watch``)."""
    return _Follower(base_url, batch_id, api_key, Display(out, bars=bars), out, err, command).follow()


async def watch_batch(
    base_url: str,
    batch_id: str,
    api_key: str | None = None,
    out: TextIO = sys.stdout,
    *,
    bars: bool = True,
    err: TextIO = sys.stderr,
    command: str = "watch",
) -> int:
    """``follow_until_done`` for a caller on an event loop (a server under test runs on it): in a
    thread, so that the loop goes on. The commands do not import asyncio: only this does."""
    to_thread = importlib.import_module("asyncio").to_thread
    follow = functools.partial(follow_until_done, bars=bars, err=err, command=command)
    result: int = await to_thread(follow, base_url, batch_id, api_key, out)
    return result


def follow_batch(
    base_url: str,
    batch_id: str,
    api_key: str | None,
    *,
    timeout: float | None = None,
    bars: bool = True,
    command: str = "watch",
    out: TextIO = sys.stdout,
) -> int:
    """``follow_until_done``, given up (exit status 1) after ``timeout`` seconds; what ``watch``,
    ``run`` and ``rerun --watch`` follow a batch with. With a timeout the following runs in a
    daemon thread, which the command leaves behind when it gives up (it exits then)."""
    if timeout is None:
        return follow_until_done(base_url, batch_id, api_key, out, bars=bars, command=command)
    outcome: list[int] = []
    raised: list[BaseException] = []

    def follow() -> None:
        try:
            outcome.append(follow_until_done(base_url, batch_id, api_key, out, bars=bars, command=command))
        except BaseException as exc:  # raised again in the command's thread
            raised.append(exc)

    follower = threading.Thread(target=follow, name="follow-batch", daemon=True)
    follower.start()
    follower.join(timeout)
    if raised:
        raise raised[0]
    if outcome:
        return outcome[0]
    print(f"Gave up waiting after {timeout:g}s; batch {batch_id} goes on in the server", file=out, flush=True)
    return EXIT_FAILED


class _Follower:
    """One request for the whole run: the batch's event stream, resumed with Last-Event-ID
    after a drop. Where the stream does not work (a proxy that buffers it or cuts it before
    the first event), long-polls instead: one request per change, or per 30 s of quiet."""

    def __init__(
        self,
        base_url: str,
        batch_id: str,
        api_key: str | None,
        display: Display,
        out: TextIO,
        err: TextIO,
        command: str,
    ) -> None:
        self.base_url, self.batch_id, self.api_key = base_url, batch_id, api_key
        self.display, self.out, self.err, self.command = display, out, err, command
        self.outage = Outage()

    def follow(self) -> int:
        last_id: str | None = None
        streams_without_events = 0
        path = f"/api/collectors/runs/batch/{self.batch_id}/events"
        while streams_without_events < STREAMS_BEFORE_POLLING:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                with self._open(path, headers, STREAM_TIMEOUT) as response:
                    if response.status != 200:
                        problem = _refused(response)
                    elif response.headers.get_content_type() != "text/event-stream":
                        break  # something between us and the server answers instead of it
                    else:
                        got_event = False
                        for event_id, event, data in sse_events(lines_of(response.body)):
                            got_event = True
                            self.connected()
                            if event_id is not None:
                                last_id = event_id
                            outcome = self.show(event, data)
                            if outcome is not None:
                                return outcome
                        streams_without_events = 0 if got_event else streams_without_events + 1
                        problem = "the stream ended before the batch did"
            except FAILURES as exc:
                problem = failure(self.base_url, exc)
            self.reconnecting(problem)
        return self.long_poll()

    def long_poll(self) -> int:
        path = f"/api/collectors/runs/batch/{self.batch_id}"
        etag: str | None = None
        while True:
            headers = {"If-None-Match": etag} if etag else {}
            try:
                with self._open(path, headers, POLL_TIMEOUT, {"wait": str(LONG_POLL_SECONDS)}) as response:
                    if response.status in (200, 304):
                        text = response.read().decode("utf-8", errors="replace")
                        self.connected()
                        if response.status == 200:
                            etag = response.headers.get("ETag")
                            outcome = self.show("batch", text)
                            if outcome is not None:
                                return outcome
                        continue
                    problem = _refused(response)
            except FAILURES as exc:
                problem = failure(self.base_url, exc)
            self.reconnecting(problem)

    def _open(
        self, path: str, headers: dict[str, str], timeout: float, params: dict[str, str] | None = None
    ) -> OpenAnswer:
        return open_answer(
            self.base_url, "GET", path, api_key=self.api_key, headers=headers, params=params, timeout=timeout
        )

    def show(self, event: str, data: str) -> int | None:
        """Display a batch state; the exit status once it is terminal."""
        if event != "batch":
            return None
        try:
            batch = json.loads(data)
        except ValueError:
            return None
        if not isinstance(batch, dict):
            return None
        self.display.update(batch)
        if batch.get("status") in TERMINAL_STATUSES:
            return print_outcome(batch, self.out)
        return None

    def connected(self) -> None:
        if self.outage.over():
            print(f"collector-hub {self.command}: reconnected to {self.base_url}", file=self.err, flush=True)

    def reconnecting(self, problem: str) -> None:
        """Say so at once, keep trying for MAX_OUTAGE_SECONDS, then give up (exit 2)."""
        attempt = self.outage.failed(problem)
        print(
            f"collector-hub {self.command}: {problem}; reconnecting to {self.base_url} (attempt {attempt})",
            file=self.err,
            flush=True,
        )
        self.outage.pause()


def _refused(response: OpenAnswer) -> str:
    """A non-200 answer: raise for the ones retrying cannot fix, else describe it."""
    try:
        body = json.loads(response.read() or b"null")
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if 400 <= response.status < 500 and response.status not in (408, 429):
        raise RunCommandError(f"the server refused the stream (HTTP {response.status}): {error or 'no error message'}")
    if response.status == 429:
        time.sleep(retry_delay(response.headers.get("Retry-After")))
    return f"HTTP {response.status}"


def run(args: argparse.Namespace) -> int:
    try:
        if not BATCH_ID.fullmatch(args.batch_id):
            raise RunCommandError(f"BATCH_ID must look like bc_12345678, got {args.batch_id!r}")
        base_url = check_base_url(args.url)
        timeout = check_timeout(args.timeout)
        api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
        return follow_batch(base_url, args.batch_id, api_key, timeout=timeout)
    except RunCommandError as exc:
        print(f"collector-hub watch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("collector-hub watch: stopped watching; the batch goes on in the server", file=sys.stderr)
        return 130
