"""The hot-state cache: the last snapshot of each batch this process cares about.

One :class:`BatchEntry` per batch holds its last :class:`BatchSnapshot` (batch and job GET
bodies, encoded once), how many followers need it re-read as soon as it changes
(``interest``: stream subscriptions and long-polls) and the long-polls waiting on it. Entries
are kept in least-recently-used order and trimmed past ``size``, never while followed or
being re-read. Whether an entry is current is the hub's call (it knows the listener and the
notified seqs); this module only holds the entries.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from server.realtime.events import BatchSnapshot


@dataclasses.dataclass(eq=False)
class BatchEntry:
    snapshot: BatchSnapshot | None = None
    verified_generation: int = -1  # listener generation in which the snapshot is known current
    refreshing: bool = False  # a re-read cycle is in progress
    # Who awaits the end of that cycle: futures made only for them (most cycles have none).
    refresh_waiters: list[asyncio.Future[BatchSnapshot | None]] | None = None
    interest: int = 0
    watchers: set[asyncio.Event] = dataclasses.field(default_factory=set)
    changed_jobs: set[str] = dataclasses.field(default_factory=set)
    notified_at: float | None = None  # monotonic time of the first unpublished NOTIFY (fanout latency)
    # How the tracker re-reads the batch on the LISTEN connection (its statement, parameters and
    # the callback of its rows: made once, tracker.py), and the listener generation of the read out.
    reader: tuple[str, Sequence[Any], Callable[[Any, Exception | None], None]] | None = None
    read_generation: int = -1

    @property
    def pinned(self) -> bool:
        """Followed or being re-read: not to be trimmed."""
        return bool(self.interest or self.watchers or self.refreshing)


class StateCache:
    """Batch id -> :class:`BatchEntry`, and job id -> batch id for the jobs of cached batches."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: collections.OrderedDict[str, BatchEntry] = collections.OrderedDict()
        self._job_batch: dict[str, str] = {}
        # The entry if cached, without touching its place in the LRU order: the dict's own
        # ``get``, called with no Python frame between (every notification asks it).
        self.get: Callable[[str], BatchEntry | None] = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def batch_ids(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> Iterator[BatchEntry]:
        return iter(self._entries.values())

    def touch(self, batch_id: str) -> None:
        self._entries.move_to_end(batch_id)

    def entry(self, batch_id: str) -> BatchEntry:
        """The batch's entry, created if need be, as the most recently used."""
        entry = self._entries.get(batch_id)
        if entry is None:
            entry = self._entries[batch_id] = BatchEntry()
            self._trim()
        else:
            self._entries.move_to_end(batch_id)
        return entry

    def batch_of(self, job_id: str) -> str | None:
        """The batch of a job seen in a cached snapshot."""
        return self._job_batch.get(job_id)

    def adopt(self, entry: BatchEntry, snapshot: BatchSnapshot) -> None:
        """Make ``snapshot`` the entry's state (the caller has checked it is newer)."""
        entry.snapshot = snapshot
        for job_id in snapshot.jobs:
            self._job_batch[job_id] = snapshot.batch_id

    def add_interest(self, batch_id: str) -> BatchEntry:
        entry = self.entry(batch_id)
        entry.interest += 1
        return entry

    def drop_interest(self, batch_id: str) -> None:
        entry = self._entries.get(batch_id)
        if entry is not None and entry.interest > 0:
            entry.interest -= 1

    def watcher_count(self) -> int:
        return sum(len(entry.watchers) for entry in self._entries.values())

    def wake_all_watchers(self) -> None:
        for entry in self._entries.values():
            for watcher in entry.watchers:
                watcher.set()

    def _trim(self) -> None:
        excess = len(self._entries) - self._size
        if excess <= 0:
            return
        for batch_id in list(self._entries):
            entry = self._entries[batch_id]
            if entry.pinned:
                continue
            del self._entries[batch_id]
            if entry.snapshot is not None:
                for job_id in entry.snapshot.jobs:
                    self._job_batch.pop(job_id, None)
            excess -= 1
            if excess <= 0:
                return
