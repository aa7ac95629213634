"""One connected client's bounded, conflating outbox (docs/ARCHITECTURE.md, rule 6).

The hub offers events without ever waiting for a client. An unsent older state of an object
is replaced by its newer state (conflation), in place, so a slow client skips intermediate
states but never sees them out of order and never loses a terminal one (nothing follows a
terminal state). A client whose outbox holds more than ``limit`` distinct objects, or whose
socket accepted nothing for ``send_timeout`` seconds, is disconnected with a reason; it
resumes from its last seq on reconnect.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable

from server.observability.metrics import EVENTS_DELIVERED, SLOW_SUBSCRIBERS_DROPPED
from server.realtime.events import Control, Event

_control_ids = itertools.count()
# A socket whose kernel-side buffer holds more than this is not written to directly.
DIRECT_WRITE_LIMIT = 64 * 1024
# Keys of objects whose last offered seq is remembered (to drop an older state that arrives
# after a newer one); pruned oldest-first past this many.
MAX_REMEMBERED = 4096


class Subscriber:
    """The queue between the hub and one connection's writer."""

    def __init__(self, limit: int, description: str = "client", transport: str = "other") -> None:
        self.limit = limit
        self.description = description
        self.transport = transport  # metric label: websocket or sse
        self._delivered_metric = EVENTS_DELIVERED.labels(transport)  # resolved once: hot path
        self._pending: collections.OrderedDict[str, Event | Control] = collections.OrderedDict()
        self._offered: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._ready = asyncio.Event()
        self.close_reason: str | None = None
        self.close_code: int | None = None
        self._drain_before_close = False
        self._held = 0
        # The fast path: a connection whose socket takes data gets an event written at once, in
        # the hub's loop, with no task switch; only a busy or slow one queues (see ``direct``).
        self.direct: Callable[[Event], bool] | None = None
        self.busy = False
        self.delivered = 0
        self.conflated = 0

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def write_directly(self, transport: asyncio.Transport | None, frame: Callable[[Event], bytes | None]) -> None:
        """Enable the fast path: ``frame(event)`` gives the wire bytes (shared by every
        subscriber), or None when this event must go through the writer task."""

        def direct(event: Event) -> bool:
            if transport is None or transport.is_closing() or transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT:
                return False
            data = frame(event)
            if data is None:
                return False
            transport.write(data)
            return True

        self.direct = direct

    def hold(self) -> None:
        """Send nothing until ``release``: a WebSocket subscribe holds the outbox so that its
        acknowledgement can go ahead of the states queued meanwhile."""
        self._held += 1

    def release(self) -> None:
        self._held -= 1
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def last_seq(self, key: str) -> int | None:
        return self._offered.get(key)

    def offer(self, event: Event) -> None:
        """Queue ``event`` unless this client already has (or is about to get) a newer state."""
        if self.closed:
            return
        key = event.key
        previous = self._offered.get(key)
        if previous is not None and event.seq <= previous:
            return
        self._offered[key] = event.seq
        self._offered.move_to_end(key)
        if len(self._offered) > MAX_REMEMBERED:
            self._offered.popitem(last=False)
        if not self._pending and not self.busy and not self._held and self.direct is not None and self.direct(event):
            self.delivered += 1
            self._delivered_metric.inc()
            return
        if key in self._pending:
            self._pending[key] = event  # same position: the older state is replaced, unsent
            self.conflated += 1
        else:
            self._pending[key] = event
            if len(self._pending) > self.limit:
                self.close(f"too slow: more than {self.limit} objects waiting to be sent; reconnect to resume", 1008)
                SLOW_SUBSCRIBERS_DROPPED.labels(self.transport).inc()
                return
        self._ready.set()

    def send_control(self, message: Control, *, first: bool = False) -> None:
        """Queue a message for this client only; ``first`` puts it ahead of everything pending
        (an acknowledgement goes before the state it acknowledges)."""
        if self.closed:
            return
        key = f"control:{next(_control_ids)}"
        self._pending[key] = message
        if first:
            self._pending.move_to_end(key, last=False)
        if len(self._pending) > self.limit:
            self.close(f"too slow: more than {self.limit} messages waiting to be sent", 1008)
            SLOW_SUBSCRIBERS_DROPPED.labels(self.transport).inc()
            return
        self._ready.set()

    def discard(self, keys: set[str]) -> None:
        """Forget unsent states of these objects (an unsubscribe takes effect at once)."""
        for key in keys:
            self._pending.pop(key, None)
            self._offered.pop(key, None)

    def discard_where(self, predicate: Callable[[Event], bool]) -> None:
        for key in [k for k, item in self._pending.items() if isinstance(item, Event) and predicate(item)]:
            del self._pending[key]
            self._offered.pop(key, None)

    def close(self, reason: str, code: int = 1000, *, drain: bool = False) -> None:
        """Ask the writer to end the connection with ``reason``; with ``drain``, after what is
        already queued (e.g. the error that explains a 1008)."""
        if self.close_reason is None:
            self.close_reason = reason
            self.close_code = code
            self._drain_before_close = drain
        self._ready.set()

    async def next(self, wait: float | None = None) -> Event | Control | None:
        """The next message to send; None on timeout (time for a heartbeat) or once closed.
        Asking for the next message says the previous one is written."""
        self.busy = False
        while (not self._pending or self._held) and not self.closed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except TimeoutError:
                return None
        if self.closed and not (self._drain_before_close and self._pending):
            return None
        _, item = self._pending.popitem(last=False)
        self.delivered += 1
        if isinstance(item, Event):
            self._delivered_metric.inc()
        self.busy = True
        return item
