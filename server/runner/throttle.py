"""Conflate a collector's stdout progress reports into a bounded rate of database writes.

A program may print thousands of ``@progress`` lines a second; each write is a commit (and,
with push, a NOTIFY), so at most one write per ``min_interval`` is made per job. A newer
report replaces an unsent older one, and the last report is always written on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from server.runner.protocol import StdoutProgress

log = logging.getLogger(__name__)


class ConflatingWriter:
    """Calls ``write(report)`` at most once per ``min_interval``. ``write`` returns False when
    the job no longer takes reports (it ended); later reports are then dropped."""

    def __init__(self, write: Callable[[StdoutProgress], Awaitable[bool]], min_interval: float) -> None:
        self._write = write
        self._interval = min_interval
        self._pending: StdoutProgress | None = None
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._accepting = True
        self._failing = False
        self.writes = 0
        self._task = asyncio.create_task(self._loop())

    def submit(self, report: StdoutProgress) -> None:
        """Queue a report; fields it leaves out keep the values of an unsent earlier one."""
        if not self._accepting:
            return
        if self._pending is not None:
            report = StdoutProgress(
                report.percent if report.percent is not None else self._pending.percent,
                report.message if report.message is not None else self._pending.message,
            )
        self._pending = report
        self._wake.set()

    async def close(self) -> None:
        """Write what is pending, then stop."""
        self._closing.set()
        self._wake.set()
        await self._task

    async def cancel(self) -> None:
        """Stop without writing what is pending."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _loop(self) -> None:
        while not (self._closing.is_set() and self._pending is None):
            if self._pending is None:
                await self._wake.wait()
                self._wake.clear()
                continue
            report, self._pending = self._pending, None
            if self._accepting:
                await self._write_one(report)
            if not self._closing.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._interval)

    async def _write_one(self, report: StdoutProgress) -> None:
        try:
            self.writes += 1
            if not await self._write(report):
                self._accepting = False
            self._failing = False
        except Exception as exc:  # a database blip loses a report, never the job
            if not self._failing:
                log.warning("could not record a progress report (%s); dropping reports until it works", exc)
            self._failing = True
