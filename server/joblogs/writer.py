"""A job's log as its runner keeps it: every line the collector prints on stdout and stderr,
redacted, cut, capped, and written to PostgreSQL in batches (ARCHITECTURE rule: job logs are
bounded and clean; sql/006_run_operations.sql has the table).

- **Batches.** Lines collect in memory and a writer task stores them with one INSERT per batch
  (at most every FLUSH_SECONDS, at once when MAX_BATCH_LINES are waiting), so a chatty
  collector costs a statement per batch, never one per line.
- **Caps.** Only the newest ``max_lines`` lines and ``max_bytes`` bytes of text are kept. Lines
  that fall out of the window are deleted with the next batch, or never written when they fall
  out before it; memory is bounded by the same caps whatever the collector prints.
- **Cut.** A line longer than MAX_LOG_LINE_BYTES keeps its start and says how much was cut.
- **Secrets.** The values of the collector's configured environment entries named like a secret
  are replaced before a line is kept (before it is cut, so a secret across the cut goes too).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Iterable, Mapping

import aiopg

from collectors.contract import MAX_LOG_LINE_BYTES, REDACTED, SECRET_ENV_WORDS
from server.db import database
from server.joblogs import store as logs

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2
MAX_BATCH_LINES = 1000
# Values shorter than this are not redacted: "1" or "on" in FOO_KEY=1 would blank out every digit.
MIN_SECRET_CHARS = 4


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values to redact: of entries whose name contains SECRET, TOKEN, PASSWORD or KEY
    (any case), longest first so a secret that contains another is replaced whole."""
    found = {
        value
        for name, value in env.items()
        if any(word in name.upper() for word in SECRET_ENV_WORDS) and len(value) >= MIN_SECRET_CHARS
    }
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def cut_line(text: str, already_cut: int) -> str:
    """At most MAX_LOG_LINE_BYTES of UTF-8, then a marker with how many bytes were cut
    (``already_cut`` bytes never reached us: the reader keeps a bounded prefix of a line)."""
    raw = text.encode("utf-8")
    cut = already_cut
    if len(raw) > MAX_LOG_LINE_BYTES:
        cut += len(raw) - MAX_LOG_LINE_BYTES
        text = raw[:MAX_LOG_LINE_BYTES].decode("utf-8", errors="ignore")
    return f"{text}… [cut {cut} bytes]" if cut else text


class JobLog:
    """The log of one run of one job; ``add`` from the output readers, ``close`` at the end."""

    def __init__(
        self,
        pool: aiopg.Pool,
        job_id: str,
        *,
        max_lines: int,
        max_bytes: int,
        secrets: list[str],
        stored: list[tuple[int, int]] | None = None,
    ) -> None:
        """``stored``: (line, bytes) of the lines an earlier run of this job left (a job handed
        back to the queue runs again from the start): they count against the caps too."""
        self._pool = pool
        self.job_id = job_id
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._secrets = secrets
        stored = stored or []
        self._next = (stored[-1][0] if stored else 0) + 1
        self._kept = collections.deque(stored)  # (line, bytes) of every line in the window
        self._kept_bytes = sum(size for _, size in stored)
        self._dropped_through = 0  # lines at or below this are out of the window
        self._deleted_through = 0  # and the table has deleted those at or below this
        self._pending: collections.deque[logs.LogLine] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._write_batches(), name=f"job log {job_id}")

    @property
    def restarted(self) -> bool:
        """An earlier run of this job left lines: this run numbers on after them."""
        return self._next > 1

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def add(self, stream: str, text: str, *, progress: bool = False, cut_bytes: int = 0) -> None:
        """One line (without its newline), as read; ``cut_bytes`` of it were never read."""
        text = cut_line(self.redact(text.replace("\x00", "\ufffd")), cut_bytes)
        line = logs.LogLine(self._next, stream, progress, dt.datetime.now(dt.UTC), text)
        self._next += 1
        size = len(text.encode("utf-8"))
        self._kept.append((line.line_no, size))
        self._kept_bytes += size
        while len(self._kept) > self._max_lines or (self._kept_bytes > self._max_bytes and len(self._kept) > 1):
            dropped, dropped_size = self._kept.popleft()
            self._kept_bytes -= dropped_size
            self._dropped_through = dropped
        while self._pending and self._pending[0].line_no <= self._dropped_through:
            self._pending.popleft()  # out of the window before it was ever written
        self._pending.append(line)
        self._wake.set()

    async def close(self) -> None:
        """Write what is left and stop the writer (it retries a short database outage)."""
        self._closing = True
        self._wake.set()
        await self._task

    async def cancel(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _write_batches(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            if not self._closing and len(self._pending) < MAX_BATCH_LINES:
                await asyncio.sleep(FLUSH_SECONDS)  # let a batch gather
            self._wake.clear()
            try:
                await self._write_pending()
                failures = 0
            except database.OUTAGE_ERRORS as exc:
                failures += 1
                log.warning("job %s: could not store log lines (%s); keeping them to retry", self.job_id, exc)
                if self._closing and failures >= 5:
                    return
                await asyncio.sleep(min(0.5 * 2**failures, 5.0))
                self._wake.set()
                continue
            if self._closing and not self._pending:
                return

    async def _write_pending(self) -> None:
        while self._pending or self._dropped_through > self._deleted_through:
            batch = [self._pending.popleft() for _ in range(min(MAX_BATCH_LINES, len(self._pending)))]
            drop_through = self._dropped_through
            try:
                await logs.write_lines(self._pool, self.job_id, batch, drop_through)
            except BaseException:
                self._pending.extendleft(reversed([line for line in batch if line.line_no > self._dropped_through]))
                raise
            self._deleted_through = drop_through
