"""One connected client's bounded, conflating outbox (docs/ARCHITECTURE.md, rule 6).

The hub offers events without ever waiting for a client. A client that is keeping up (nothing
queued, its writer idle, its socket taking data) gets the event's shared frame written to its
socket at once by the fanout's loop (realtime/fanout.py), which reads the socket from each
subscription (``direct``, kept here), and that is all an offer costs. Only a client that is
behind queues: an unsent older state of an object is replaced by its newer state
(conflation), in place, so a slow client skips intermediate states but never sees them out of
order and never loses a terminal one (nothing follows a terminal state). A client whose outbox holds more than ``limit``
distinct objects, or whose socket accepted nothing for ``send_timeout`` seconds, is
disconnected with a reason; it resumes from its last seq on reconnect.

"Never an older state after a newer one" is kept by each topic (a batch or job subscription
remembers the last seq it offered: ``Topic.last_seq``). Only a subscriber that follows
collectors (many objects per topic, and topics that can overlap a job topic) remembers the
last seq offered per object, here.

Events written are counted in the ``events_delivered`` metric's plain integers for the
subscriber's transport (server/observability/metrics.py): the fanout adds once per call, a
writer once per message.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable
from typing import Protocol

from server.observability.metrics import EVENTS_DELIVERED, SLOW_SUBSCRIBERS_DROPPED
from server.realtime.events import Control, Event
from server.realtime.fanout import Wire, has_room, offer_each

_control_ids = itertools.count()
# The transports a subscriber can be on (its ``transport``, a metric label), each with its own
# wire format for the fast path.
TRANSPORTS = ("websocket", "sse")
# Keys of objects whose last offered seq is remembered (to drop an older state that arrives
# after a newer one); pruned oldest-first past this many.
MAX_REMEMBERED = 4096


def wire_of(transport: object) -> Wire | None:
    """``transport`` if it has the interface the fast path writes through, else None (then
    every event goes through the connection's writer)."""
    return transport if isinstance(transport, Wire) else None


class Topic(Protocol):
    """What a subscriber needs to know of the subscriptions it holds."""

    kind: str
    target: str | frozenset[str]
    last_seq: int
    direct: Wire | None  # the fanout writes there: kept by the subscriber (``_update``)


def _key(topic: Topic) -> str:
    return f"{topic.kind}:{topic.target}"


class Subscriber:
    """The queue between the hub and one connection's writer."""

    __slots__ = (
        "_busy", "_direct_terminal", "_drain_before_close", "_held", "_offered", "_on_wake", "_pending",
        "_sink", "_tally", "_topics", "_waiter", "close_code", "close_reason", "description", "direct",
        "limit", "transport", "ws",
    )  # fmt: skip
    # Offered an event outside any topic (``offer``), a subscriber is its own follower for the
    # fanout's loop: never ended, no seq.
    ended = False
    last_seq = -1

    def __init__(self, limit: int, description: str = "client", transport: str = "other") -> None:
        self.limit = limit
        self.description = description
        self.transport = transport  # metric label: websocket or sse
        self._tally = EVENTS_DELIVERED.labels(transport)  # its events_delivered series, looked up once
        # What waits to be sent, by object; None while nothing does (most connections, most of
        # the time: an emptied OrderedDict keeps its table, and idle connections are many).
        self._pending: collections.OrderedDict[str, Event | Control] | None = None
        self._offered: collections.OrderedDict[str, int] | None = None  # only while following collectors
        self._topics: list[Topic] = []
        self._waiter: asyncio.Future[bool] | None = None  # a writer waiting in ``next``
        self._on_wake: Callable[[], None] | None = None  # else: start a writer (``write_when_queued``)
        self.close_reason: str | None = None
        self.close_code: int | None = None
        self._drain_before_close = False
        self._held = 0
        self._busy = False  # the writer is sending an item: direct writes would overtake it
        # The fast path (``write_directly``): the socket, whether the wire is a WebSocket's
        # (else an SSE stream's: ``transport`` says which), and whether a terminal event may go
        # that way too.
        self._sink: Wire | None = None
        self.ws = transport == "websocket"
        self._direct_terminal = True
        # The one fact the fanout's hot path reads, here and on each subscription: the socket
        # while this client keeps up (``_keeps_up``) and remembers nothing per object (follows
        # no collectors), else None.
        self.direct: Wire | None = None

    def _keeps_up(self) -> bool:
        """Sink set, open, nothing queued or held, writer idle: events may be written directly."""
        return (
            self._sink is not None
            and self.close_reason is None
            and not self._pending
            and not self._held
            and not self._busy
        )

    def _update(self) -> None:
        direct = self._sink if self._offered is None and self._keeps_up() else None
        self.direct = direct
        for topic in self._topics:
            topic.direct = direct

    def _leave_fast_path(self) -> None:
        if self.direct is not None:
            self.direct = None
            for topic in self._topics:
                topic.direct = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(True)
        elif self._on_wake is not None:
            self._on_wake()

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def write_directly(self, transport: object, *, terminal: bool = True) -> None:
        """Enable the fast path: each event's shared wire bytes (``Event.ws_frame`` for a
        WebSocket subscriber, ``Event.sse_chunk`` for an SSE one) are written straight to
        ``transport``; with ``terminal=False`` a terminal event goes through the writer (which
        ends the stream after it)."""
        if self.transport not in TRANSPORTS:
            raise ValueError(f"no wire format for a {self.transport!r} subscriber")
        self._sink = wire_of(transport)
        self._direct_terminal = terminal
        self._update()

    def write_when_queued(self, start_writer: Callable[[], None]) -> None:
        """For a connection with no writer task while it keeps up: ``start_writer()`` is
        called whenever something is queued (or the connection is to be closed) and no writer
        waits in ``next``; the writer sends with ``take`` until it gets None, then ends. It
        must not start a second writer while one runs."""
        self._on_wake = start_writer

    # ---- the topics held (kept by the subscription registry) ----

    def add_topic(self, topic: Topic) -> None:
        topic.direct = self.direct
        self._topics.append(topic)
        if topic.kind == "collectors" and self._offered is None:
            # From now on topics may overlap: remember per object, starting from what each
            # single-object topic has offered.
            self._offered = collections.OrderedDict(
                (_key(t), t.last_seq) for t in self._topics if t.kind != "collectors" and t.last_seq >= 0
            )
            self._leave_fast_path()  # each event is remembered first: off the hot path

    def remove_topic(self, topic: Topic) -> None:
        topic.direct = None
        if topic in self._topics:
            self._topics.remove(topic)
        offered = self._offered
        if offered is not None and not any(t.kind == "collectors" for t in self._topics):
            for t in self._topics:
                t.last_seq = max(t.last_seq, offered.get(_key(t), -1))
            self._offered = None
            self._update()

    # ---- offering ----

    def offer(self, event: Event) -> None:
        """Write ``event`` now if this client keeps up, else queue it, unless this client
        already has (or is about to get) a newer state of the object: outside any topic, the
        fanout's own path (realtime/fanout.py)."""
        offer_each((self,), event, False)

    @property
    def subscriber(self) -> Subscriber:
        return self  # as a follower of the fanout's loop (``offer``)

    def sink_for(self, event: Event) -> Wire | None:
        """For the fanout, off its hot path (a follower of collectors, a terminal event, a client
        behind): the socket to write ``event`` to if it may go there now; else None, with the
        event queued, or dropped when an equal or newer state of its object was offered."""
        if self._offered is not None and not self._remember(event):
            return None
        if self._keeps_up() and (self._direct_terminal or not event.terminal):
            return self._sink
        self.queue(event)
        return None

    def write_taken(self, item: Event | Control) -> bool:
        """For the writer, with the item ``take`` just gave it: write an event's shared wire
        bytes at once if the socket has room again, as the fast path does (no per-connection
        framing, no timeout, no await: a client that fell behind for a moment costs little
        more per message than one that keeps up). False, and nothing written, for a control
        message, a terminal event that must end the stream through the writer, a connection
        without the fast path (compression), or a socket still holding more than
        ``DIRECT_WRITE_LIMIT`` unsent or closing: then the writer sends it its own way."""
        sink = self._sink
        if (
            sink is None
            or not isinstance(item, Event)
            or (item.terminal and not self._direct_terminal)
            or not has_room(sink)
        ):
            return False
        sink.write(item.ws_frame() if self.ws else item.sse_chunk())
        return True

    @property
    def connection_gone(self) -> bool:
        """The socket the fast path writes to is closed (or there is none)."""
        return self._sink is None or self._sink.is_closing()

    def abort_connection(self) -> None:
        """Drop the connection the fast path writes to at once, unsent data and all (a client
        that accepts nothing)."""
        if self._sink is not None:
            self._sink.abort()

    def write_now(self, data: bytes) -> bool:
        """Write ``data`` (whole wire bytes: an SSE heartbeat chunk) at once if this client keeps
        up and nothing is being written to it; else do nothing and say so."""
        sink = self._sink
        if sink is None or not self._keeps_up() or not has_room(sink):
            return False
        sink.write(data)
        return True

    def _remember(self, event: Event) -> bool:
        offered = self._offered
        assert offered is not None
        key = event.key
        previous = offered.get(key)
        if previous is not None and event.seq <= previous:
            return False
        offered[key] = event.seq
        offered.move_to_end(key)
        if len(offered) > MAX_REMEMBERED:
            offered.popitem(last=False)
        return True

    def queue(self, event: Event) -> None:
        """Queue ``event`` for the writer, in place of an unsent older state of its object."""
        if self.close_reason is not None:
            return
        key = event.key
        pending = self._pending
        if pending is None:
            pending = self._pending = collections.OrderedDict()
        if key in pending:
            pending[key] = event  # same position: the older state is replaced, unsent
        else:
            pending[key] = event
            if len(pending) > self.limit:
                self.close(f"too slow: more than {self.limit} objects waiting to be sent; reconnect to resume", 1008)
                SLOW_SUBSCRIBERS_DROPPED.labels(self.transport).inc()
                return
        self._leave_fast_path()
        self._wake()

    def hold(self) -> None:
        """Send nothing until ``release``: a WebSocket subscribe holds the outbox so that its
        acknowledgement can go ahead of the states queued meanwhile."""
        self._held += 1
        self._leave_fast_path()

    def release(self) -> None:
        self._held -= 1
        self._update()
        self._wake()

    @property
    def pending(self) -> int:
        return len(self._pending) if self._pending is not None else 0

    def send_control(self, message: Control, *, first: bool = False) -> None:
        """Queue a message for this client only; ``first`` puts it ahead of everything pending
        (an acknowledgement goes before the state it acknowledges)."""
        if self.closed:
            return
        key = f"control:{next(_control_ids)}"
        pending = self._pending
        if pending is None:
            pending = self._pending = collections.OrderedDict()
        pending[key] = message
        if first:
            pending.move_to_end(key, last=False)
        if len(pending) > self.limit:
            self.close(f"too slow: more than {self.limit} messages waiting to be sent", 1008)
            SLOW_SUBSCRIBERS_DROPPED.labels(self.transport).inc()
            return
        self._leave_fast_path()
        self._wake()

    def discard(self, keys: set[str]) -> None:
        """Forget unsent states of these objects (an unsubscribe takes effect at once)."""
        pending = self._pending
        for key in keys:
            if pending is not None:
                pending.pop(key, None)
            if self._offered is not None:
                self._offered.pop(key, None)
        self._drop_if_empty()
        self._update()

    def discard_where(self, predicate: Callable[[Event], bool]) -> None:
        pending = self._pending
        if pending is not None:
            for key in [k for k, item in pending.items() if isinstance(item, Event) and predicate(item)]:
                del pending[key]
                if self._offered is not None:
                    self._offered.pop(key, None)
        self._drop_if_empty()
        self._update()

    def _drop_if_empty(self) -> None:
        if not self._pending:
            self._pending = None

    def close(self, reason: str, code: int = 1000, *, drain: bool = False) -> None:
        """Ask the writer to end the connection with ``reason``; with ``drain``, after what is
        already queued (e.g. the error that explains a 1008)."""
        if self.close_reason is None:
            self.close_reason = reason
            self.close_code = code
            self._drain_before_close = drain
        self._leave_fast_path()
        self._wake()

    async def next(self, wait: float | None = None) -> Event | Control | None:
        """The next message to send; None on timeout (time for a heartbeat) or once closed.
        Asking for the next message says the previous one is written."""
        self._busy = False
        self._update()
        loop = asyncio.get_running_loop()
        while (not self._pending or self._held) and not self.closed:
            waiter = self._waiter = loop.create_future()
            timer = None if wait is None else loop.call_later(wait, _expire, waiter)
            try:
                if not await waiter:
                    return None
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return self.take()

    def take(self) -> Event | Control | None:
        """The next message to send now, or None: nothing to send (or the outbox is held), or
        closed (after what is queued, if the close asked to drain). Asking says the previous
        message is written."""
        self._busy = False
        pending = self._pending
        if (self.closed and not (self._drain_before_close and pending)) or not pending or self._held:
            self._update()
            return None
        _, item = pending.popitem(last=False)
        if not pending:
            self._pending = None
        if isinstance(item, Event):
            self._tally.count += 1
        self._busy = True
        self._leave_fast_path()
        return item


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
