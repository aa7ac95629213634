"""Waiting for a condition instead of sleeping for a guess."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.security.rate_limit_counters import WINDOW_SECONDS

T = TypeVar("T")


# How much longer each wait of ``eventually`` is than the one before, up to LONGEST_WAIT: a
# condition met at once is seen within ``interval``, and one that takes seconds (a collector
# run, a browser page) is probed a few times a second, not twenty. Each probe costs CPU (an HTTP
# request to the app under test and its statement in PostgreSQL, or a call into the browser),
# and the suite runs with every core busy, so probes are what every other test waits for.
BACKOFF = 1.5
LONGEST_WAIT = 0.25


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 20.0,  # noqa: ASYNC109 (a deadline for the whole poll, not for one await)
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy; return that. Fails after ``timeout``.
    The first wait between probes is ``interval``; each next one is longer (BACKOFF), up to
    LONGEST_WAIT or ``interval`` if that is longer, and the last probe is at the deadline."""
    deadline = time.monotonic() + timeout
    wait = interval
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(wait, left))
        wait = min(wait * BACKOFF, max(LONGEST_WAIT, interval))
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


async def early_in_a_rate_window(room: float = 20.0) -> None:
    """Return once the in-process rate limiter's window (fixed minutes of the wall clock, see
    server/security/rate_limit_counters.py) has at least ``room`` seconds left, so that a test
    counting its requests against a limit cannot have the count start again between two of them
    (seen under load: remaining 4, 3, 2, 1 and then 4 again)."""

    async def early() -> bool:
        return WINDOW_SECONDS - time.time() % WINDOW_SECONDS > room

    await eventually(early, timeout=WINDOW_SECONDS, interval=0.5, what="a fresh rate-limit window")
