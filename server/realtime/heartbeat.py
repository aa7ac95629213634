"""Heartbeats of every stream of the process from one timer (docs/LIVE_PUSH.md).

Once per COLLECTOR_HUB_STREAM_HEARTBEAT seconds each WebSocket session is pinged (one that has
sent nothing since the previous ping, no pong and no message, is cut off) and each SSE stream
gets a comment that keeps proxies from closing it. The streams are spread over one group per
second of the interval and one group is served per tick, so the pings, and the pongs they
bring back, come evenly over the interval instead of in one burst.

One timer for the process rather than timers per connection (aiohttp's WebSocket heartbeat
keeps two timer handles and a context per connection, re-created every interval; an SSE loop
waiting with a timeout, one more): an idle connection keeps less memory, and timer handles
that live for an interval stop filling the garbage collector's oldest generation, whose full
collections pause the loop for longer the more connections there are.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Protocol

# RFC 6455 5.5.2: FIN + ping, no payload, unmasked (server to client).
PING_FRAME = b"\x89\x00"
MAX_GROUPS = 60
STALLED_SHARE = 0.25  # of the interval, lost to waiting for a CPU or to the loop falling behind
SCHEDSTAT = "/proc/thread-self/schedstat"  # Linux: run time, run-queue wait (ns), time slices


def run_queue_wait() -> float:
    """Seconds the calling thread has waited for a CPU while ready to run (Linux' schedstat);
    0.0 where the system does not say."""
    try:
        with open(SCHEDSTAT, "rb") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class Beating(Protocol):
    def beat(self) -> None:
        """Once an interval: a WebSocket pings (or cuts off a peer that answered nothing), an SSE
        stream writes a comment."""


class Heartbeat:
    """Calls ``beat()`` on every registered stream once per ``interval`` seconds."""

    def __init__(self, interval: float, groups: int | None = None) -> None:
        self.interval = interval
        count = groups or max(1, min(MAX_GROUPS, math.ceil(interval)))  # about one group per second
        self._groups: list[set[Beating]] = [set() for _ in range(count)]
        self._next = 0  # the group served at the next tick
        self.ticks = 0  # ticks served so far: the tick numbered t served group (t - 1) % groups
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._closed = False
        # Seconds lost in each of the last len(groups) ticks, i.e. over the interval just ended.
        self._lost: collections.deque[float] = collections.deque(maxlen=count)
        self._waited = 0.0  # run_queue_wait() at the last tick
        self.stalled = False  # during a tick: the interval just ended lost too much (module doc)

    @property
    def due(self) -> float:
        """When the tick being served was due (``loop.time()``), or the next one outside a tick:
        the time the spread decided, which the tick's lateness does not move."""
        return self._due

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups)

    def add(self, session: Beating) -> None:
        """First beat one whole interval from now: the group served last joins next."""
        self._groups[self._next - 1].add(session)
        if self._timer is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._due = loop.time() + self.interval / len(self._groups)
            self._timer = loop.call_at(self._due, self._tick)
            self._waited = run_queue_wait()

    def discard(self, session: Beating) -> None:
        for group in self._groups:
            group.discard(session)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for group in self._groups:
            group.clear()

    def _tick(self) -> None:
        groups = self._groups
        group = groups[self._next]
        self._next = (self._next + 1) % len(groups)
        self.ticks += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        waited = run_queue_wait()
        # Time lost since the last tick: waiting for a CPU, or this tick coming late (the loop
        # busy, or the whole process stopped); the two often overlap, so the larger counts.
        self._lost.append(max(waited - self._waited, now - self._due))
        self._waited = waited
        self.stalled = sum(self._lost) > self.interval * STALLED_SHARE
        for session in list(group):
            session.beat()
        # Keep the beat on time whatever the tick took, without catching up on missed ones: a
        # tick that came over a step late moves the next one to when it came (due at once).
        self._due = max(self._due + self.interval / len(groups), now)
        self._timer = loop.call_at(self._due, self._tick)
