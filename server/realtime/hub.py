"""The hub: one per process, between the listener and the transports (SSE, WebSocket,
long-poll). Data flows one way: database -> listener -> hub -> transports.

A NOTIFY reaches ``on_notify``: the job wake-ups registered with ``wake_ups`` fire (the runner
and the webhook dispatcher register themselves; nothing here imports them) and the state
tracker (``tracker.py``) marks the batch's cache entry (``cache.py``) stale, re-reading it at
once if anyone follows it. Each newer snapshot comes back to ``_publish``, which offers what
changed to every subscription (``subscriptions.py``) covering it: the same :class:`Event`
objects, hence the same bytes, to every subscriber.

Rules that keep clients simple:
  * a batch or job event is offered only when its GET body changed;
  * nothing is sent about an object after its terminal state (a finished job's body still
    moves with its batch's summary; polling sees that, streams have ended);
  * a subscriber never gets an older state after a newer one (``Subscriber.offer``).

Transports hold their connection with ``connect``/``disconnect`` (counted, closed at
shutdown), follow topics with ``follow``/``unsubscribe``, and long-poll with ``watching``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiopg

from collectors.contract import TERMINAL_STATUSES
from server.errors import NotFoundError
from server.observability.metrics import EVENTS_PUBLISHED, FANOUT_LATENCY
from server.realtime.cache import BatchEntry, StateCache
from server.realtime.events import BatchSnapshot, Event
from server.realtime.fanout import offer_each
from server.realtime.heartbeat import Heartbeat
from server.realtime.listener import Listener
from server.realtime.log_tail import VARIANCE_FRAMING, VARIANCES_KEY, LogTails
from server.realtime.notify import (
    STATE_PAYLOAD_PREFIXES,
    JobWakeUps,
    Notification,
    is_variance_wake_up,
    parse_change,
    parse_log_wake_up,
)
from server.realtime.sources import LiveSources, VarianceSource
from server.realtime.subscriber import Subscriber
from server.realtime.subscriptions import Subscription, SubscriptionRegistry
from server.realtime.tracker import StateTracker

log = logging.getLogger(__name__)

SHUTDOWN_REASON = "server shutting down; reconnect to resume"

# Subscriptions offered an event in one turn of the loop; a larger fanout goes on in the next
# turns (in order: the next event waits for the end of this one's).
FANOUT_SLICE = 1000
_PUBLISHED_BATCH = EVENTS_PUBLISHED.labels("batch")
_PUBLISHED_JOB = EVENTS_PUBLISHED.labels("job")
_Offer = tuple[list[Subscription], Event | None, bool, float | None]  # in Hub._fanouts
# A job's statuses that its wake-ups (JobWakeUps.fire) and its log's followers act on.
_WAKING_STATUSES = frozenset({"queued", *TERMINAL_STATUSES})


class Hub:
    def __init__(
        self, pool: aiopg.Pool, *, sources: LiveSources | None = None, cache_size: int = 2000, heartbeat: float = 15.0
    ) -> None:
        """``sources`` is what the hub reads (sources.py); a hub without them only pushes."""
        self._pool = pool
        self.wake_ups = JobWakeUps()
        self.log_tails = LogTails(pool, sources.logs if sources else None)
        self.variance_source = sources.variances if sources else None
        self.variance_tail = LogTails(pool, self.variance_source, VARIANCE_FRAMING)
        self.heartbeat = Heartbeat(heartbeat)  # WebSocket sessions register with it
        self._subs = SubscriptionRegistry()
        self.closing = False
        self.stats = collections.Counter[str]()
        self._tracker = StateTracker(
            pool,
            sources.batches if sources else None,
            StateCache(cache_size),
            self._publish,
            lambda: bool(self._subs.by_collector),
            self.stats,
        )
        self._cache = self._tracker.cache
        # Offers waiting for their turn: (subscriptions, event, single-object topics?, and for
        # the end marker of one state's fanout (event None) the time of its NOTIFY).
        self._fanouts: collections.deque[_Offer] = collections.deque()
        self._fanout_position = 0  # in the first queued list
        self._fanout_scheduled = False

    async def latest_variance_seq(self, source: VarianceSource) -> int:
        """Where a follower of the variances that gives no ``since`` starts: the newest change."""
        return await source.latest_seq(self._pool)

    @property
    def listener(self) -> Listener | None:
        return self._tracker.listener

    def attach(self, listener: Listener) -> None:
        """The LISTEN connection that feeds ``on_notify`` and ``on_listening``."""
        self._tracker.listener = listener

    @property
    def subscribers(self) -> frozenset[Subscriber]:
        """The open connections (read only: transports register with ``connect``)."""
        return frozenset(self._subs.connections)

    # ---- from the listener ----

    def on_notify(self, payload: str) -> None:
        """A NOTIFY payload (see sql/002_notify.sql). Synchronous and cheap: it only marks state
        stale and schedules reads. New log lines (sql/006_run_operations.sql) wake their followers."""
        # A state's payload is told by how it starts, and read without an object made for it
        # (docs/LIVE_PUSH.md, the fixed cost per state).
        if not payload.startswith(STATE_PAYLOAD_PREFIXES) and self._other_wake_up(payload):
            return
        change = parse_change(payload)
        if change is None:
            return
        batch_id, seq, kind, job_id, status = change
        self.stats["notifications"] += 1
        if status in _WAKING_STATUSES:  # queued or ended: someone may wait for it
            self.wake_ups.fire(Notification(batch_id, seq, kind, job_id, status))
            if job_id is not None and status in TERMINAL_STATUSES:
                self.log_tails.wake(job_id)  # its log is complete now
        self._tracker.note_change(batch_id, seq, job_id)

    def _other_wake_up(self, payload: str) -> bool:
        """New log lines or variances: wake their followers. False for any other payload."""
        log_job = parse_log_wake_up(payload)
        if log_job is not None:
            self.log_tails.wake(log_job)
        elif is_variance_wake_up(payload):
            self.variance_tail.wake(VARIANCES_KEY)
        else:
            return False
        self.stats["notifications"] += 1
        return True

    async def on_listening(self) -> None:
        """After every (re)connect: re-read what moved while no notification could reach us."""
        self.log_tails.wake_all()
        self.variance_tail.wake_all()
        await self._tracker.resync()

    async def current_batch(self, batch_id: str) -> BatchSnapshot | None:
        """The batch as of now (from the cache when the listener vouches for it), or None."""
        return await self._tracker.current_batch(batch_id)

    async def current_job(self, job_id: str) -> BatchSnapshot | None:
        """The snapshot of the job's batch (the job's body is in ``.jobs``), or None."""
        return await self._tracker.current_job(job_id)

    # ---- the fanout ----

    def _publish(self, entry: BatchEntry, old: BatchSnapshot | None, new: BatchSnapshot) -> None:
        """Offer what changed between two snapshots of a batch to the subscriptions covering it,
        comparing their bodies' bytes in place: it runs for every state (docs/LIVE_PUSH.md)."""
        subs = self._subs
        notified_at = entry.notified_at
        budget = 0 if self._fanouts else FANOUT_SLICE  # offers left to make at once
        try:
            batch = new.batch
            if old is None or (not old.batch.terminal and old.batch.encoded != batch.encoded):
                followers = subs.by_batch.get(new.batch_id)
                if followers:
                    budget = self._offer_now(followers, batch, True, budget)
                _PUBLISHED_BATCH.count += 1
            old_jobs = old.jobs if old is not None else {}
            for job_id, event in new.jobs.items():
                before = old_jobs.get(job_id)
                if before is not None and (before.terminal or before.encoded == event.encoded):
                    continue
                if before is None and event.terminal and job_id not in entry.changed_jobs:
                    continue  # first sight of a run that ended earlier: not news
                followers = subs.by_job.get(job_id)
                if followers:
                    budget = self._offer_now(followers, event, True, budget)
                _PUBLISHED_JOB.count += 1
                if event.collector is not None:
                    followers = subs.by_collector.get(event.collector)
                    if followers:
                        budget = self._offer_now(followers, event, False, budget)
        finally:
            if self._fanouts:
                self._fanouts.append(([], None, False, notified_at))
                if not self._fanout_scheduled:
                    self._run_fanouts()
            elif notified_at is not None:  # NOTIFY -> every subscriber's outbox offered
                FANOUT_LATENCY.observe(time.monotonic() - notified_at)

    def _offer_now(self, followers: set[Subscription], event: Event, single: bool, budget: int) -> int:
        """Offer ``event`` to ``followers`` (``single``: batch or job topics) now if they fit in
        ``budget``, else queue the offer for ``_run_fanouts``; the budget left (0 once queued:
        the state's later events queue behind it)."""
        if len(followers) > budget:
            self._fanouts.append((list(followers), event, single, None))
            return 0
        if single:
            self._offer_single(list(followers), event)
        else:
            offer_each(list(followers), event, False)
        return budget - len(followers)

    def _run_fanouts(self) -> None:
        """Offer queued events in order, FANOUT_SLICE subscriptions per turn of the loop at most."""
        self._fanout_scheduled = False
        queue = self._fanouts
        budget = FANOUT_SLICE
        try:
            while queue and budget > 0:
                subs, event, single, notified_at = queue[0]
                if event is None:  # the end of one state's fanout
                    queue.popleft()
                    if notified_at is not None:  # NOTIFY -> every subscriber's outbox offered
                        FANOUT_LATENCY.observe(time.monotonic() - notified_at)
                    continue
                start = self._fanout_position
                end = min(len(subs), start + budget)
                self._fanout_position = end
                if single:
                    self._offer_single(subs[start:end] if start or end < len(subs) else subs, event)
                else:
                    offer_each(subs[start:end], event, False)
                budget -= end - start
                if end == len(subs):
                    queue.popleft()
                    self._fanout_position = 0
        finally:
            if queue and not self._fanout_scheduled:
                self._fanout_scheduled = True
                asyncio.get_running_loop().call_soon(self._run_fanouts)

    def _offer_single(self, subs: list[Subscription], event: Event) -> None:
        """The hot loop (realtime/fanout.py); a terminal state ends the topics it reached."""
        offer_each(subs, event, True)
        if event.terminal:
            for sub in subs:
                if sub.ended:  # unregistering twice changes nothing
                    self._unregister(sub)

    def _offer(self, sub: Subscription, event: Event) -> None:
        if sub.kind == "collectors":
            offer_each((sub,), event, False)
        else:
            self._offer_single([sub], event)

    # ---- subscriptions ----

    def _unregister(self, sub: Subscription) -> None:
        self._subs.remove(sub)
        if sub.batch_id is not None:
            self._cache.drop_interest(sub.batch_id)
            sub.batch_id = None

    def connect(self, subscriber: Subscriber) -> None:
        """Hold ``subscriber`` as an open connection, counted by the gauge and closed at
        shutdown, until ``disconnect`` (call it in a ``finally``). Plain calls rather than a
        context manager: a generator frame per connection is memory that idle connections
        pay for. One that connects after shutdown began is closed at once, like the others."""
        self._subs.connections.add(subscriber)
        if self.closing:
            subscriber.close(SHUTDOWN_REASON, 1001)

    def disconnect(self, subscriber: Subscriber) -> None:
        self._subs.connections.discard(subscriber)

    async def follow(
        self, subscriber: Subscriber, kind: str, target: str | frozenset[str], since: int | None
    ) -> Subscription:
        """Follow a batch or a job (``target`` its id) or collectors (``target`` their names):
        its current state is offered first if newer than ``since``, then every change. Raises
        NotFoundError for an unknown batch or job. Stop with ``unsubscribe``."""
        if isinstance(target, frozenset):
            return await self._follow_collectors(subscriber, target, since)
        if kind == "batch":
            return await self._follow_batch(subscriber, target, since)
        if kind == "job":
            return await self._follow_job(subscriber, target, since)
        raise ValueError(f"no topic kind {kind!r} for {target!r}")

    async def _follow_batch(self, subscriber: Subscriber, batch_id: str, since: int | None) -> Subscription:
        sub = Subscription(subscriber, "batch", batch_id, since, batch_id)
        self._subs.add(sub)
        self._tracker.add_interest(batch_id)
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

    async def _follow_job(self, subscriber: Subscriber, job_id: str, since: int | None) -> Subscription:
        sub = Subscription(subscriber, "job", job_id, since)
        self._subs.add(sub)
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
            self._tracker.add_interest(snapshot.batch_id)
        event = snapshot.jobs[job_id]
        self._offer(sub, event)
        if event.terminal and not sub.ended:
            sub.ended = True
            self._unregister(sub)
        return sub

    async def _follow_collectors(
        self, subscriber: Subscriber, names: frozenset[str], since: int | None
    ) -> Subscription:
        """Every run of these collectors: each one's latest run and, resuming, every run changed
        after ``since`` (at most half the outbox), in seq order if newer than ``since``; then every change."""
        sub = Subscription(subscriber, "collectors", names, since)
        self._subs.add(sub)
        try:
            replay = subscriber.limit // 2  # the outbox, held until the replay is offered, must hold it
            events = await self._tracker.batches.latest_run_events(self._pool, sorted(names), since, replay)
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
        entry = self._tracker.add_interest(batch_id)
        entry.watchers.add(watcher)
        try:
            yield watcher
        finally:
            entry.watchers.discard(watcher)
            self._cache.drop_interest(batch_id)

    # ---- shutdown and figures ----

    def close(self) -> None:
        """Shutdown: every stream ends (WebSockets with 1001) so clients reconnect elsewhere,
        and every long-poll answers now."""
        self.closing = True
        self.heartbeat.close()
        self._subs.close_connections(SHUTDOWN_REASON, 1001)
        self._cache.wake_all_watchers()

    def open_connections(self) -> dict[str, int]:
        """For the ``collector_hub_open_connections`` gauge (read at scrape time)."""
        return {**self._subs.connection_counts(), "longpoll": self._cache.watcher_count()}

    def status(self) -> dict[str, Any]:
        return {
            "subscribers": len(self._subs.connections),
            "cached_batches": len(self._cache),
            "notifications": self.stats["notifications"],
        }
