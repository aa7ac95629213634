"""Progress lines on a collector's stdout, for programs that can neither import
``collectors.progress`` nor run ``collector-hub progress``.

The format, one report per line (UTF-8; the line must start with ``@progress``)::

    @progress 50 Processing devices        percent, then an optional message
    @progress 50                           percent only
    @progress - Connecting to the API      no percent: the message only
    @progress {"percent": 50, "message": "Processing devices"}   the same as JSON

A stdout report always means status ``running``: a program ends its job by exiting (0 is
completed, anything else failed). Percent is an integer 0-100 (``checked_percent`` of
collectors/contract.py: in digits, or in JSON a number such as 50 or 50.0). A message longer
than 1000 characters is cut to 1000; control characters become spaces.

Everything else on stdout is ignored (it is the program's own output, not a status message,
and may hold things that should not be shown on a dashboard): other lines, ``@progress`` lines
that do not parse, lines longer than 64 KiB. Bytes that are not UTF-8 become U+FFFD. None of
these affect the job, and output that never ends a line costs no memory.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from collectors.contract import MAX_MESSAGE_CHARS, checked_percent, percent_from_text

PREFIX = "@progress"
MAX_LINE_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # C0, DEL and C1 (\x9b is a CSI)
_PLAIN = re.compile(r"^(?P<percent>-|[0-9]{1,3})(?:\s+(?P<message>.*))?$", re.DOTALL)


class StdoutProgress(NamedTuple):
    """One report (a NamedTuple, not a dataclass: the CLI imports this module for ``printable``,
    and ``dataclasses`` brings ``inspect``, about a fifth of what a CLI command costs to start)."""

    percent: int | None
    message: str | None


def printable(text: str) -> str:
    """``text`` without NUL (PostgreSQL refuses it in text) or other control characters:
    each becomes a space."""
    return _CONTROL.sub(" ", text.replace("\t", " "))


def clean_text(text: str, limit: int) -> str:
    """A one-line message: printable, trimmed, at most ``limit`` characters."""
    text = printable(text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def parse_progress_line(line: str) -> StdoutProgress | None:
    """The report in one stdout line (without its newline), or None if it is not one."""
    if not line.startswith(PREFIX):
        return None
    rest = line[len(PREFIX) :]
    if rest and not rest[0].isspace():
        return None  # "@progressive" is ordinary output
    rest = rest.strip()
    try:
        if rest.startswith("{"):
            return _parse_json(rest)
        match = _PLAIN.match(rest)
        if match is None:
            return None
        raw_percent = match["percent"]
        percent = None if raw_percent == "-" else percent_from_text(raw_percent)
        message = clean_text(match["message"], MAX_MESSAGE_CHARS) if match["message"] else None
    except ValueError:
        return None
    if percent is None and not message:
        return None
    return StdoutProgress(percent, message or None)


def _parse_json(text: str) -> StdoutProgress | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not set(data) <= {"percent", "message"}:
        return None
    percent = data.get("percent")
    if percent is not None:
        percent = checked_percent(percent)
    message = data.get("message")
    if message is not None:
        if not isinstance(message, str):
            return None
        message = clean_text(message, MAX_MESSAGE_CHARS) or None
    if percent is None and message is None:
        return None
    return StdoutProgress(percent, message)


class LineSplitter:
    """Bytes in, complete lines out, with bounded memory: a line longer than
    ``max_line_bytes`` is dropped whole (its start and its end), never buffered."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, chunk: bytes) -> list[str]:
        lines: list[str] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            self._take(chunk[start:end], lines, complete=True)
            start = end + 1
        self._take(chunk[start:], lines, complete=False)
        return lines

    def finish(self) -> list[str]:
        """The last line if the stream ended without a newline."""
        lines: list[str] = []
        if self._buffer:
            self._take(b"", lines, complete=True)
        return lines

    def _take(self, piece: bytes, lines: list[str], *, complete: bool) -> None:
        if not self._discarding:
            self._buffer += piece
            if len(self._buffer) > self._max:
                self._buffer.clear()
                self._discarding = True
        if complete:
            if not self._discarding:
                lines.append(self._buffer.decode("utf-8", errors="replace").rstrip("\r"))
            self._buffer.clear()
            self._discarding = False


class CappedLineSplitter:
    """Bytes in, complete lines out as ``(text, cut_bytes)``: a line longer than
    ``max_line_bytes`` keeps its first ``max_line_bytes`` and counts the rest, so memory stays
    bounded and the log still shows how the line began."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._cut = 0

    def feed(self, chunk: bytes) -> list[tuple[str, int]]:
        lines: list[tuple[str, int]] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._take(chunk[start:end])
            lines.append(self._line())
            start = end + 1
        self._take(chunk[start:])
        return lines

    def finish(self) -> list[tuple[str, int]]:
        """The last line if the stream ended without a newline."""
        return [self._line()] if self._buffer or self._cut else []

    def _take(self, piece: bytes) -> None:
        room = self._max - len(self._buffer)
        self._buffer += piece[:room]
        self._cut += max(0, len(piece) - room)

    def _line(self) -> tuple[str, int]:
        line = (self._buffer.decode("utf-8", errors="replace").rstrip("\r"), self._cut)
        self._buffer.clear()
        self._cut = 0
        return line
