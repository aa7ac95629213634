"""The fanout's hot loop: one event offered to the followers of a topic, and the one copy of the
fast path (docs/ARCHITECTURE.md, rules 5 and 6; docs/LIVE_PUSH.md, the per-subscriber path).

Per follower the loop reads the subscription it iterates and nothing else: the seq it last
offered, and the socket its subscriber keeps there while the client keeps up (``direct``, kept
by ``Subscriber``). With a socket, the event's shared frame is written at once after two checks,
each a public method of the transport: no more than ``DIRECT_WRITE_LIMIT`` unsent (a client that
falls behind is queued, never buffered without bound) and not closing. Any other follower (one
behind, held or closed, one that follows collectors, a terminal event) asks its subscriber
(``Subscriber.sink_for``), which remembers, queues or drops the event, or says where to write
it. Events written are counted once a call, per transport.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from server.observability.metrics import EVENTS_DELIVERED
from server.realtime.events import Event

# A transport holding more than this unsent (in its write buffer) is not written to directly.
DIRECT_WRITE_LIMIT = 64 * 1024
_DELIVERED_WS = EVENTS_DELIVERED.labels("websocket")
_DELIVERED_SSE = EVENTS_DELIVERED.labels("sse")


@runtime_checkable
class Wire(Protocol):
    """What the fast path needs of a connection's transport: asyncio's write-transport interface,
    public methods only. asyncio's own transports (plain and TLS) have it, and so does uvloop's,
    which is no subclass of ``asyncio.Transport`` (docs/LIVE_PUSH.md, event loops)."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...

    def abort(self) -> None: ...


class Outbox(Protocol):
    """What the loop asks of a follower's subscriber off the fast path."""

    def sink_for(self, event: Event) -> Wire | None: ...

    def queue(self, event: Event) -> None: ...


class Follower(Protocol):
    """A subscription as the loop sees it (a subscriber offered an event outside any topic is
    its own follower: never ended, no seq)."""

    ended: bool
    last_seq: int

    @property
    def direct(self) -> Wire | None: ...

    @property
    def ws(self) -> bool: ...

    @property
    def subscriber(self) -> Outbox: ...


def has_room(wire: Wire) -> bool:
    """Whether ``wire`` may be written to now: no more than ``DIRECT_WRITE_LIMIT`` unsent, not
    closing (``offer_each`` makes the same two checks inline, once per follower)."""
    return wire.get_write_buffer_size() <= DIRECT_WRITE_LIMIT and not wire.is_closing()


def offer_each(followers: Iterable[Follower], event: Event, single: bool) -> None:
    """Offer ``event`` to each follower that has not had it or a newer state. ``single``: batch
    or job topics, which remember the seq offered and end with a terminal state (the hub then
    unregisters them); a collectors topic keeps its ``since`` (its subscriber remembers per
    object)."""
    seq = event.seq
    terminal = event.terminal
    ws_frame = sse_chunk = None  # built once, on first use
    ws_written = sse_written = 0
    try:
        for follower in followers:
            if follower.ended or seq <= follower.last_seq:
                continue
            if single:
                follower.last_seq = seq
                if terminal:
                    follower.ended = True
            wire = follower.direct
            if wire is None or terminal:
                wire = follower.subscriber.sink_for(event)
                if wire is None:
                    continue
            if wire.get_write_buffer_size() <= DIRECT_WRITE_LIMIT and not wire.is_closing():
                if follower.ws:
                    if ws_frame is None:
                        ws_frame = event.ws_frame()
                    wire.write(ws_frame)
                    ws_written += 1
                else:
                    if sse_chunk is None:
                        sse_chunk = event.sse_chunk()
                    wire.write(sse_chunk)
                    sse_written += 1
            else:
                follower.subscriber.queue(event)
    finally:
        _DELIVERED_WS.count += ws_written
        _DELIVERED_SSE.count += sse_written
