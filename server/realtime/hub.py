"""The hub: topics -> subscribers, and the hot-state cache behind polling and push.

One :class:`BatchEntry` per batch this process cares about holds the batch's last snapshot
(batch and job GET bodies, encoded once). A notification marks the entry stale; if anyone is
following the batch (a stream subscription, a long-poll, a collectors topic) it is re-read at
once, once per process however many follow it, and the new states are offered to every
subscriber (the same :class:`Event` objects, hence the same bytes). Entries nobody follows stay
cached for polling and are re-read lazily, on the next GET after a change.

Rules that keep clients simple:
  * a batch or job event is offered only when its GET body changed;
  * nothing is sent about an object after its terminal state (a finished job's body still
    moves with its batch's summary; polling sees that, streams have ended);
  * a subscriber never gets an older state after a newer one (``Subscriber.offer``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiopg

from collectors.contract import TERMINAL_STATUSES
from server.db import runs
from server.errors import NotFoundError
from server.observability.metrics import EVENTS_PUBLISHED, FANOUT_LATENCY
from server.realtime import state
from server.realtime.events import BatchSnapshot, Event
from server.realtime.listener import Listener
from server.realtime.subscriber import Subscriber

log = logging.getLogger(__name__)

# How many batches' latest notified seq is remembered, cached or not (to spot a read that
# raced a commit); far more than can change while one read is in flight.
NOTIFIED_MEMORY = 10_000
# A transaction that drew its seq earlier than the newest seq seen may commit later; after a
# reconnect, batches changed this long before the last good round trip are looked at too.
RESYNC_MARGIN_SECONDS = 60


@dataclasses.dataclass(eq=False)
class Subscription:
    """One topic followed by one subscriber: ``kind`` is batch, job or collectors."""

    subscriber: Subscriber
    kind: str
    target: str | frozenset[str]
    since: int | None = None
    batch_id: str | None = None
    ended: bool = False  # its object reached a terminal state and that state was offered

    def covers(self, event: Event) -> bool:
        if self.kind == "collectors":
            return event.kind == "job" and event.collector in self.target
        return event.kind == self.kind and event.object_id == self.target


@dataclasses.dataclass(eq=False)
class BatchEntry:
    snapshot: BatchSnapshot | None = None
    verified_generation: int = -1  # listener generation in which the snapshot is known current
    refresh: asyncio.Task[BatchSnapshot | None] | None = None
    interest: int = 0
    watchers: set[asyncio.Event] = dataclasses.field(default_factory=set)
    changed_jobs: set[str] = dataclasses.field(default_factory=set)
    notified_at: float | None = None  # monotonic time of the first unpublished NOTIFY (fanout latency)


class Hub:
    def __init__(
        self,
        pool: aiopg.Pool,
        *,
        cache_size: int = 2000,
        on_job_queued: Callable[[], None] | None = None,
        on_job_ended: Callable[[], None] | None = None,
    ):
        self._pool = pool
        self._cache_size = cache_size
        self._on_job_queued = on_job_queued
        # A job that ended may have ended its batch (the webhook outbox then has a delivery).
        self._on_job_ended = on_job_ended
        self.listener: Listener | None = None
        self._entries: collections.OrderedDict[str, BatchEntry] = collections.OrderedDict()
        self._job_batch: dict[str, str] = {}
        self._notified: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._high_water = 0
        self._batch_subs: dict[str, set[Subscription]] = {}
        self._job_subs: dict[str, set[Subscription]] = {}
        self._collector_subs: dict[str, set[Subscription]] = {}
        self.subscribers: set[Subscriber] = set()
        self.closing = False
        self.stats = collections.Counter[str]()

    # ---- from the listener ----

    def on_notify(self, payload: str) -> None:
        """A NOTIFY payload (see sql/002_notify.sql). Synchronous and cheap: it only marks state
        stale and schedules reads."""
        try:
            message = json.loads(payload)
            batch_id = str(message["batch_id"])
            seq = int(message["seq"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed notification %r", payload[:200])
            return
        self.stats["notifications"] += 1
        if message.get("kind") == "job":
            status = message.get("status")
            if status == "queued" and self._on_job_queued:
                self._on_job_queued()
            elif status in TERMINAL_STATUSES and self._on_job_ended:
                self._on_job_ended()
        self._note_change(batch_id, seq, message.get("job_id"))

    def _note_change(self, batch_id: str, seq: int, job_id: str | None) -> None:
        self._high_water = max(self._high_water, seq)
        if seq > self._notified.get(batch_id, 0):
            self._notified[batch_id] = seq
            self._notified.move_to_end(batch_id)
            if len(self._notified) > NOTIFIED_MEMORY:
                self._notified.popitem(last=False)
        entry = self._entries.get(batch_id)
        if entry is None:
            if not self._collector_subs:
                return  # nobody here cares about this batch
            entry = self._entry(batch_id)
        if isinstance(job_id, str):
            entry.changed_jobs.add(job_id)
        if entry.snapshot is not None and seq <= entry.snapshot.seq:
            return
        if entry.interest or self._collector_subs:
            if entry.notified_at is None:
                entry.notified_at = time.monotonic()
            self._schedule_refresh(batch_id, entry)

    async def on_listening(self) -> None:
        """After every (re)connect: compare what we hold with the tables and re-read what moved
        while no notification could reach us (DESIGN.md invariant 4)."""
        listener = self.listener
        generation = listener.generation if listener else -1
        known = list(self._entries)
        if known:
            seqs = await runs.batch_seqs(self._pool, known)
            for batch_id in known:
                entry = self._entries.get(batch_id)
                if entry is None:
                    continue
                seq = seqs.get(batch_id)
                if seq is None:
                    continue  # deleted: a GET will say 404
                if entry.snapshot is not None and entry.snapshot.seq == seq:
                    entry.verified_generation = generation
                else:
                    self._note_change(batch_id, seq, None)
        if self._collector_subs and listener is not None and listener.generation > 1:
            since = None
            if listener.last_db_time is not None:
                since = listener.last_db_time - dt.timedelta(seconds=RESYNC_MARGIN_SECONDS)
            for batch_id, seq in (await runs.batches_changed_since(self._pool, self._high_water, since)).items():
                self._note_change(batch_id, seq, None)
        self.stats["resyncs"] += 1

    # ---- the cache ----

    def _entry(self, batch_id: str) -> BatchEntry:
        entry = self._entries.get(batch_id)
        if entry is None:
            entry = self._entries[batch_id] = BatchEntry()
            self._trim()
        else:
            self._entries.move_to_end(batch_id)
        return entry

    def _trim(self) -> None:
        excess = len(self._entries) - self._cache_size
        if excess <= 0:
            return
        for batch_id in list(self._entries):
            entry = self._entries[batch_id]
            if entry.interest or entry.watchers or (entry.refresh and not entry.refresh.done()):
                continue
            del self._entries[batch_id]
            if entry.snapshot is not None:
                for job_id in entry.snapshot.jobs:
                    self._job_batch.pop(job_id, None)
            excess -= 1
            if excess <= 0:
                return

    def _generation(self) -> int:
        listener = self.listener
        return listener.generation if listener is not None and listener.listening else -1

    def _is_current(self, batch_id: str, entry: BatchEntry) -> bool:
        snapshot = entry.snapshot
        return (
            snapshot is not None
            and entry.verified_generation == self._generation() != -1
            and self._notified.get(batch_id, 0) <= snapshot.seq
        )

    def _schedule_refresh(self, batch_id: str, entry: BatchEntry) -> asyncio.Task[BatchSnapshot | None]:
        if entry.refresh is None or entry.refresh.done():
            entry.refresh = asyncio.create_task(self._refresh(batch_id, entry), name=f"refresh {batch_id}")
            entry.refresh.add_done_callback(_log_failure)
        return entry.refresh

    async def _refresh(self, batch_id: str, entry: BatchEntry) -> BatchSnapshot | None:
        """Read the batch until the read is at least as new as every notification about it."""
        while True:
            generation = self._generation()
            snapshot = await state.read_batch_snapshot(self._pool, batch_id=batch_id)
            self.stats["reads"] += 1
            if snapshot is None:
                return None
            self._publish(entry, snapshot, generation)
            if self._notified.get(batch_id, 0) <= snapshot.seq:
                return snapshot

    async def current_batch(self, batch_id: str) -> BatchSnapshot | None:
        """The batch as of now: from the cache when the listener vouches for it (one shared
        round trip on the LISTEN connection, no pool connection, no table read), else read."""
        fenced = await self._fence()
        entry = self._entries.get(batch_id)
        if fenced and entry is not None and self._is_current(batch_id, entry):
            self._entries.move_to_end(batch_id)
            self.stats["cache_hits"] += 1
            return entry.snapshot
        if fenced:
            entry = self._entry(batch_id)
            return await asyncio.shield(self._schedule_refresh(batch_id, entry))
        return await self._read_direct(batch_id=batch_id)

    async def current_job(self, job_id: str) -> BatchSnapshot | None:
        """The snapshot of the job's batch (the job's body is in ``.jobs``), or None."""
        batch_id = self._job_batch.get(job_id)
        if batch_id is not None:
            snapshot = await self.current_batch(batch_id)
            if snapshot is not None and job_id in snapshot.jobs:
                return snapshot
        fenced = await self._fence()
        return await self._read_direct(job_id=job_id, fenced=fenced)

    async def _read_direct(
        self, *, batch_id: str | None = None, job_id: str | None = None, fenced: bool = False
    ) -> BatchSnapshot | None:
        generation = self._generation() if fenced else -1
        snapshot = await state.read_batch_snapshot(self._pool, batch_id=batch_id, job_id=job_id)
        self.stats["reads"] += 1
        if snapshot is not None:
            self._publish(self._entry(snapshot.batch_id), snapshot, generation)
        return snapshot

    async def _fence(self) -> bool:
        return self.listener is not None and await self.listener.fence()

    def _publish(self, entry: BatchEntry, new: BatchSnapshot, generation: int) -> None:
        """Adopt a fresh read and offer what changed to the subscribers of the batch."""
        old = entry.snapshot
        if old is not None and new.seq <= old.seq:
            if new.seq == old.seq and generation != -1 and generation == self._generation():
                entry.verified_generation = generation
            return
        entry.snapshot = new
        entry.verified_generation = generation if generation == self._generation() else -1
        for job_id in new.jobs:
            self._job_batch[job_id] = new.batch_id
        if old is None or (not old.batch.terminal and old.batch.data != new.batch.data):
            self._deliver(self._batch_subs.get(new.batch_id, ()), new.batch)
            EVENTS_PUBLISHED.labels("batch").inc()
        for job_id, event in new.jobs.items():
            before = old.jobs.get(job_id) if old is not None else None
            if before is not None and (before.terminal or before.data == event.data):
                continue
            if before is None and event.terminal and job_id not in entry.changed_jobs:
                continue  # first sight of a run that ended earlier: not news
            self._deliver(self._job_subs.get(job_id, ()), event)
            EVENTS_PUBLISHED.labels("job").inc()
            if event.collector is not None:
                self._deliver(self._collector_subs.get(event.collector, ()), event)
        entry.changed_jobs.clear()
        for watcher in entry.watchers:
            watcher.set()
        if entry.notified_at is not None:  # NOTIFY -> every subscriber's outbox offered
            FANOUT_LATENCY.observe(time.monotonic() - entry.notified_at)
            entry.notified_at = None
        self.stats["published"] += 1

    def _deliver(self, subscriptions: Iterable[Subscription], event: Event) -> None:
        for sub in list(subscriptions):
            self._offer(sub, event)

    def _offer(self, sub: Subscription, event: Event) -> None:
        if sub.ended or (sub.since is not None and event.seq <= sub.since):
            return
        sub.subscriber.offer(event)
        if sub.kind != "collectors" and event.terminal:
            sub.ended = True
            self._unregister(sub)

    # ---- subscriptions ----

    def _unregister(self, sub: Subscription) -> None:
        if sub.kind == "batch":
            _discard(self._batch_subs, str(sub.target), sub)
        elif sub.kind == "job":
            _discard(self._job_subs, str(sub.target), sub)
        else:
            for name in sub.target:
                _discard(self._collector_subs, name, sub)
        if sub.batch_id is not None:
            self._drop_interest(sub.batch_id)
            sub.batch_id = None

    def _add_interest(self, batch_id: str) -> BatchEntry:
        entry = self._entry(batch_id)
        entry.interest += 1
        if entry.snapshot is not None and self._notified.get(batch_id, 0) > entry.snapshot.seq:
            self._schedule_refresh(batch_id, entry)
        return entry

    def _drop_interest(self, batch_id: str) -> None:
        entry = self._entries.get(batch_id)
        if entry is not None and entry.interest > 0:
            entry.interest -= 1

    async def subscribe_batch(self, subscriber: Subscriber, batch_id: str, since: int | None) -> Subscription:
        """Follow a batch: its current state is offered first if newer than ``since``. Raises
        NotFoundError for an unknown batch."""
        sub = Subscription(subscriber, "batch", batch_id, since, batch_id)
        self._batch_subs.setdefault(batch_id, set()).add(sub)
        self._add_interest(batch_id)
        try:
            snapshot = await self.current_batch(batch_id)
        except BaseException:
            self.unsubscribe(sub)
            raise
        if snapshot is None:
            self.unsubscribe(sub)
            raise NotFoundError("Batch not found")
        self._offer(sub, snapshot.batch)
        if snapshot.terminal and not sub.ended:
            sub.ended = True
            self._unregister(sub)
        return sub

    async def subscribe_job(self, subscriber: Subscriber, job_id: str, since: int | None) -> Subscription:
        sub = Subscription(subscriber, "job", job_id, since)
        self._job_subs.setdefault(job_id, set()).add(sub)
        try:
            snapshot = await self.current_job(job_id)
        except BaseException:
            self.unsubscribe(sub)
            raise
        if snapshot is None:
            self.unsubscribe(sub)
            raise NotFoundError("Job not found")
        if not sub.ended:
            sub.batch_id = snapshot.batch_id
            self._add_interest(snapshot.batch_id)
        event = snapshot.jobs[job_id]
        self._offer(sub, event)
        if event.terminal and not sub.ended:
            sub.ended = True
            self._unregister(sub)
        return sub

    async def subscribe_collectors(
        self, subscriber: Subscriber, names: frozenset[str], since: int | None
    ) -> Subscription:
        """Follow every run of these collectors: first each one's latest run (if newer than
        ``since``), then every change."""
        sub = Subscription(subscriber, "collectors", names, since)
        for name in names:
            self._collector_subs.setdefault(name, set()).add(sub)
        try:
            events = await state.read_latest_run_events(self._pool, sorted(names))
        except BaseException:
            self.unsubscribe(sub)
            raise
        for event in events:
            self._offer(sub, event)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop at once: unsent states of the topic are dropped too."""
        if not sub.ended:
            sub.ended = True
            self._unregister(sub)
        if sub.kind == "collectors":
            names = sub.target
            sub.subscriber.discard_where(lambda e: e.kind == "job" and e.collector in names)
        else:
            sub.subscriber.discard({f"{sub.kind}:{sub.target}"})

    # ---- long-poll ----

    @contextlib.asynccontextmanager
    async def watching(self, batch_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever a new state of the batch is published; while it is held the
        batch is re-read as soon as it changes."""
        watcher = asyncio.Event()
        entry = self._add_interest(batch_id)
        entry.watchers.add(watcher)
        try:
            yield watcher
        finally:
            entry.watchers.discard(watcher)
            self._drop_interest(batch_id)

    # ---- lifetime ----

    def close(self) -> None:
        """Shutdown: every stream ends (WebSockets with 1001) so clients reconnect elsewhere,
        and every long-poll answers now."""
        self.closing = True
        for subscriber in list(self.subscribers):
            subscriber.close("server shutting down; reconnect to resume", 1001)
        for entry in self._entries.values():
            for watcher in entry.watchers:
                watcher.set()

    def open_connections(self) -> dict[str, int]:
        """For the ``collector_hub_open_connections`` gauge (read at scrape time)."""
        counts = collections.Counter(subscriber.transport for subscriber in self.subscribers)
        counts["longpoll"] = sum(len(entry.watchers) for entry in self._entries.values())
        return {transport: counts.get(transport, 0) for transport in ("websocket", "sse", "longpoll")}

    def status(self) -> dict[str, Any]:
        return {
            "subscribers": len(self.subscribers),
            "cached_batches": len(self._entries),
            "notifications": self.stats["notifications"],
        }


def _discard(index: dict[str, set[Subscription]], key: str, sub: Subscription) -> None:
    subs = index.get(key)
    if subs is not None:
        subs.discard(sub)
        if not subs:
            del index[key]


def _log_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning("re-reading %s failed: %s", task.get_name(), exc)
