"""Who follows what: the topic indexes the hub's fanout reads, and the open connections.

A :class:`Subscription` is one topic (a batch, a job, or every run of some collectors)
followed by one :class:`Subscriber`. The registry indexes subscriptions by the id an event
names, so that publishing a state costs one dictionary lookup per index, then one turn of the
fanout's loop per follower (realtime/fanout.py: no key built, no call, nothing read but the
subscription and the socket). Each
subscription is also told to its subscriber (``Subscriber.add_topic``), which needs to know when
its topics can overlap. Connections (one subscriber per SSE stream or WebSocket) are
registered apart from their subscriptions: shutdown closes them and the open-connections
gauge counts them.
"""

from __future__ import annotations

import collections
import dataclasses

from server.realtime.events import Event
from server.realtime.fanout import Wire
from server.realtime.subscriber import TRANSPORTS, Subscriber


@dataclasses.dataclass(eq=False, slots=True)
class Subscription:
    """One topic followed by one subscriber: ``kind`` is batch, job or collectors."""

    subscriber: Subscriber
    kind: str
    target: str | frozenset[str]
    since: int | None = None
    batch_id: str | None = None  # the batch whose cache entry this subscription keeps hot
    ended: bool = False  # its object reached a terminal state and that state was offered
    # A batch or job topic: the seq of the last state offered (``since`` at first), so that an
    # older state read before a newer one was offered is never offered after it. A collectors
    # topic keeps ``since`` here (its subscriber remembers per object).
    last_seq: int = dataclasses.field(init=False)
    # For the fanout's loop: the socket its subscriber keeps here while the client keeps up
    # (else None), and whether it is a WebSocket's (else an SSE stream's).
    direct: Wire | None = dataclasses.field(default=None, init=False)
    ws: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.last_seq = -1 if self.since is None else self.since
        self.ws = self.subscriber.ws

    def covers(self, event: Event) -> bool:
        if self.kind == "collectors":
            return event.kind == "job" and event.collector in self.target
        return event.kind == self.kind and event.object_id == self.target


class SubscriptionRegistry:
    """Subscriptions by batch id, job id and collector name; open connections by subscriber."""

    def __init__(self) -> None:
        self.by_batch: dict[str, set[Subscription]] = {}
        self.by_job: dict[str, set[Subscription]] = {}
        self.by_collector: dict[str, set[Subscription]] = {}
        self.connections: set[Subscriber] = set()

    def add(self, sub: Subscription) -> None:
        sub.subscriber.add_topic(sub)
        if sub.kind == "batch":
            self.by_batch.setdefault(str(sub.target), set()).add(sub)
        elif sub.kind == "job":
            self.by_job.setdefault(str(sub.target), set()).add(sub)
        else:
            for name in sub.target:
                self.by_collector.setdefault(name, set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        if sub.kind == "batch":
            _discard(self.by_batch, str(sub.target), sub)
        elif sub.kind == "job":
            _discard(self.by_job, str(sub.target), sub)
        else:
            for name in sub.target:
                _discard(self.by_collector, name, sub)
        sub.subscriber.remove_topic(sub)

    def close_connections(self, reason: str, code: int) -> None:
        for subscriber in list(self.connections):
            subscriber.close(reason, code)

    def connection_counts(self) -> dict[str, int]:
        """Open connections per transport (every transport named, zero included)."""
        counts = collections.Counter(subscriber.transport for subscriber in self.connections)
        return {transport: counts.get(transport, 0) for transport in TRANSPORTS}


def _discard(index: dict[str, set[Subscription]], key: str, sub: Subscription) -> None:
    subs = index.get(key)
    if subs is not None:
        subs.discard(sub)
        if not subs:
            del index[key]
