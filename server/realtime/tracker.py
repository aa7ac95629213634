"""Keeping the state cache exact: which batches to re-read, when, and when not to.

A notification marks a batch's entry stale (``note_change``); a batch that someone follows is
re-read at once, once per process however many follow it, until the read is at least as new as
every notification about it. ``current_batch`` / ``current_job`` answer from the cache only
when the listener vouches for it: a fence (one shared round trip on the LISTEN connection)
proves every earlier commit has been notified, and the entry was verified in the listener's
current generation. After every (re)connect ``resync`` compares the cache with the tables
(docs/ARCHITECTURE.md, rule 4). Each newer snapshot is handed to ``on_new_state`` (the hub's
fanout).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiopg

from server.realtime.cache import BatchEntry, StateCache
from server.realtime.events import BatchSnapshot
from server.realtime.listener import Listener, RowsOrError
from server.realtime.notify import NotifiedSeqs
from server.realtime.sources import BatchSource

log = logging.getLogger(__name__)

# A transaction that drew its seq earlier than the newest seq seen may commit later; after a
# reconnect, batches changed this long before the last good round trip are looked at too.
RESYNC_MARGIN_SECONDS = 60

# (entry, the snapshot it held before or None, the newer snapshot it holds now); the entry's
# ``notified_at`` is still set during the call.
NewStateHandler = Callable[[BatchEntry, BatchSnapshot | None, BatchSnapshot], None]


class StateTracker:
    def __init__(
        self,
        pool: aiopg.Pool,
        batches: BatchSource | None,
        cache: StateCache,
        on_new_state: NewStateHandler,
        follows_every_batch: Callable[[], bool],
        stats: collections.Counter[str],
    ) -> None:
        self._pool = pool
        self._batches = batches  # None: a hub that only pushes (tests of the fanout)
        self.cache = cache
        self._on_new_state = on_new_state
        # True while some topic (a collectors topic) may care about a batch nobody named: then
        # every notified batch is cached and re-read at once.
        self._follows_every_batch = follows_every_batch
        self._stats = stats
        self.notified = NotifiedSeqs()
        self.listener: Listener | None = None
        self._pool_reads: set[asyncio.Task[None]] = set()  # reads while the listener cannot

    @property
    def batches(self) -> BatchSource:
        if self._batches is None:
            raise RuntimeError("this hub has no batch source to read from")
        return self._batches

    # ---- what moved ----

    def note_change(self, batch_id: str, seq: int, job_id: str | None) -> None:
        self.notified.note(batch_id, seq)
        entry = self.cache.get(batch_id)
        if entry is None:
            if not self._follows_every_batch():
                return  # nobody here cares about this batch
            entry = self.cache.entry(batch_id)
        if job_id is not None:
            entry.changed_jobs.add(job_id)
        if entry.snapshot is not None and seq <= entry.snapshot.seq:
            return
        if entry.interest or self._follows_every_batch():
            if entry.notified_at is None:
                entry.notified_at = time.monotonic()
            self._schedule_refresh(batch_id, entry)

    async def resync(self) -> None:
        """After every (re)connect: compare what we hold with the tables and re-read what moved
        while no notification could reach us."""
        listener = self.listener
        generation = listener.generation if listener else -1
        known = self.cache.batch_ids()
        if known:
            seqs = await self.batches.batch_seqs(self._pool, known)
            for batch_id in known:
                entry = self.cache.get(batch_id)
                if entry is None:
                    continue
                seq = seqs.get(batch_id)
                if seq is None:
                    continue  # deleted: a GET will say 404
                if entry.snapshot is not None and entry.snapshot.seq == seq:
                    entry.verified_generation = generation
                else:
                    self.note_change(batch_id, seq, None)
        if self._follows_every_batch() and listener is not None and listener.generation > 1:
            since = None
            if listener.last_db_time is not None:
                since = listener.last_db_time - dt.timedelta(seconds=RESYNC_MARGIN_SECONDS)
            high_water = self.notified.high_water
            for batch_id, seq in (await self.batches.batches_changed_since(self._pool, high_water, since)).items():
                self.note_change(batch_id, seq, None)
        self._stats["resyncs"] += 1

    def add_interest(self, batch_id: str) -> BatchEntry:
        """Keep the batch re-read as soon as it changes (until ``cache.drop_interest``)."""
        entry = self.cache.add_interest(batch_id)
        if entry.snapshot is not None and self.notified.latest(batch_id) > entry.snapshot.seq:
            self._schedule_refresh(batch_id, entry)
        return entry

    # ---- reading ----

    async def current_batch(self, batch_id: str) -> BatchSnapshot | None:
        """The batch as of now: from the cache when the listener vouches for it (one shared
        round trip on the LISTEN connection, no pool connection, no table read), else read."""
        fenced = await self._fence()
        entry = self.cache.get(batch_id)
        if fenced and entry is not None and self._is_current(batch_id, entry):
            self.cache.touch(batch_id)
            self._stats["cache_hits"] += 1
            return entry.snapshot
        if fenced:
            entry = self.cache.entry(batch_id)
            return await asyncio.shield(self._refreshed(batch_id, entry))
        return await self._read_direct(batch_id=batch_id)

    async def current_job(self, job_id: str) -> BatchSnapshot | None:
        """The snapshot of the job's batch (the job's body is in ``.jobs``), or None."""
        batch_id = self.cache.batch_of(job_id)
        if batch_id is not None:
            snapshot = await self.current_batch(batch_id)
            if snapshot is not None and job_id in snapshot.jobs:
                return snapshot
        fenced = await self._fence()
        return await self._read_direct(job_id=job_id, fenced=fenced)

    def _generation(self) -> int:
        listener = self.listener
        return listener.generation if listener is not None and listener.listening else -1

    def _is_current(self, batch_id: str, entry: BatchEntry) -> bool:
        snapshot = entry.snapshot
        return (
            snapshot is not None
            and entry.verified_generation == self._generation() != -1
            and self.notified.latest(batch_id) <= snapshot.seq
        )

    async def _fence(self) -> bool:
        return self.listener is not None and await self.listener.fence()

    def _schedule_refresh(self, batch_id: str, entry: BatchEntry) -> None:
        """Re-read the batch until the read is at least as new as every notification about it
        (one such cycle per batch at a time). Nothing is made for anyone to wait on: the cycle
        of every followed state costs no future (docs/LIVE_PUSH.md, the fixed cost per state);
        a caller that needs its result asks ``_refreshed``.

        Each read of the cycle starts here: on the LISTEN connection, answered in its reader
        callback (no task), else from the pool."""
        if entry.refreshing:
            return
        entry.refreshing = True
        listener = self.listener
        if listener is not None and self._batches is not None:
            reader = entry.reader
            if reader is None:
                reader = entry.reader = self._reader(batch_id, entry)
            entry.read_generation = listener.generation  # read_rows takes it only while listening
            if listener.read_rows(*reader):
                return
        self._read_from_pool(batch_id, entry, self._generation())

    def _refreshed(self, batch_id: str, entry: BatchEntry) -> asyncio.Future[BatchSnapshot | None]:
        """A future for the last snapshot of the batch's re-read cycle (started if none is)."""
        waiter: asyncio.Future[BatchSnapshot | None] = asyncio.get_running_loop().create_future()
        if entry.refresh_waiters is None:
            entry.refresh_waiters = []
        entry.refresh_waiters.append(waiter)
        self._schedule_refresh(batch_id, entry)
        return waiter

    def _reader(self, batch_id: str, entry: BatchEntry) -> tuple[str, Sequence[Any], RowsOrError]:
        """The batch's statement, its parameters and the callback its rows go to, made once per
        entry: every state of a followed batch is read with them (docs/LIVE_PUSH.md, the fixed
        cost per state)."""
        batches = self.batches
        sql, params = batches.snapshot_statement(batch_id)
        snapshot_from = batches.snapshot_from

        def answered(rows: list[tuple[Any, ...]] | None, error: Exception | None) -> None:
            if rows is None:  # the connection broke: the pool answers instead
                self._read_from_pool(batch_id, entry, -1)
                return
            try:
                snapshot = snapshot_from(rows)
            except Exception as exc:
                self._end_refresh(batch_id, entry, exc)
                return
            self._have_read(batch_id, entry, snapshot, entry.read_generation)

        return sql, params, answered

    def _read_from_pool(self, batch_id: str, entry: BatchEntry, generation: int) -> None:
        async def read() -> None:
            try:
                snapshot = await self.batches.batch_snapshot(self._pool, batch_id=batch_id)
            except Exception as exc:
                self._end_refresh(batch_id, entry, exc)
                return
            self._have_read(batch_id, entry, snapshot, generation)

        task = asyncio.create_task(read(), name=f"refresh {batch_id}")
        self._pool_reads.add(task)
        task.add_done_callback(self._pool_reads.discard)

    def _have_read(self, batch_id: str, entry: BatchEntry, snapshot: BatchSnapshot | None, generation: int) -> None:
        """Take one read of the cycle; read again if a newer notification came meanwhile."""
        self._stats["reads"] += 1
        try:
            if snapshot is not None:
                self._adopt(entry, snapshot, generation)
                if self.notified.latest(batch_id) > snapshot.seq:
                    entry.refreshing = False  # the cycle goes on: its next read
                    self._schedule_refresh(batch_id, entry)
                    return
        except Exception as exc:
            self._end_refresh(batch_id, entry, exc)
            return
        if entry.refresh_waiters is None:  # nobody awaits the cycle (every followed state)
            entry.refreshing = False
        else:
            self._end_refresh(batch_id, entry, snapshot)

    def _end_refresh(self, batch_id: str, entry: BatchEntry, result: BatchSnapshot | Exception | None) -> None:
        entry.refreshing = False
        waiters, entry.refresh_waiters = entry.refresh_waiters, None
        if isinstance(result, Exception):
            log.warning("re-reading %s failed: %s", batch_id, result)
        for waiter in waiters or ():
            if waiter.done():
                continue
            if isinstance(result, Exception):
                waiter.set_exception(result)
                waiter.exception()  # logged above: not again if nobody awaits it
            else:
                waiter.set_result(result)

    async def _read_direct(
        self, *, batch_id: str | None = None, job_id: str | None = None, fenced: bool = False
    ) -> BatchSnapshot | None:
        generation = self._generation() if fenced else -1
        snapshot = await self.batches.batch_snapshot(self._pool, batch_id=batch_id, job_id=job_id, reader=self.listener)
        self._stats["reads"] += 1
        if snapshot is not None:
            self._adopt(self.cache.entry(snapshot.batch_id), snapshot, generation)
        return snapshot

    def _adopt(self, entry: BatchEntry, new: BatchSnapshot, generation: int) -> None:
        """Take a fresh read (read in listener ``generation``) if it is newer, and publish it."""
        old = entry.snapshot
        if old is not None and new.seq <= old.seq:
            if new.seq == old.seq and generation != -1 and generation == self._generation():
                entry.verified_generation = generation
            return
        self.cache.adopt(entry, new)
        entry.verified_generation = generation if generation == self._generation() else -1
        self._on_new_state(entry, old, new)
        entry.changed_jobs.clear()
        for watcher in entry.watchers:
            watcher.set()
        entry.notified_at = None  # the fanout has taken it (it times NOTIFY -> every outbox)
        self._stats["published"] += 1
