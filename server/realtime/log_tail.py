"""Live job logs: the followers of each job's log in this process, fed from the same NOTIFY path
as progress (docs/ARCHITECTURE.md, rules 1 and 5).

A runner stores a batch of lines; the table's trigger NOTIFYs ``{"kind": "log", "job_id",
"line"}`` (sql/006_run_operations.sql); the hub calls ``wake(job_id)``. One reader per job then
reads the new lines once (through the ``LogSource`` the app registered: sources.py), from the
lowest position any follower of that job has, and encodes each line's frames once; every
follower gets the lines past its own position from that same batch. A job that ends wakes its
log too: once the job is terminal and its last line is read (the runner stores every line
before it ends the job), each follower is told the log is complete.

Followers resume by line number (SSE ``Last-Event-ID``), so nothing here needs to survive a
reconnect; after the LISTEN connection comes back, ``wake_all`` re-reads every followed log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import aiopg

from collectors.contract import TERMINAL_STATUSES
from server.realtime.sources import LogSource

log = logging.getLogger(__name__)

# Lines read per query; a longer backlog is read in several.
READ_PAGE = 2000


@dataclasses.dataclass(frozen=True)
class Framing:
    """How one kind of tail frames what it reads: the WebSocket message's type, the field that
    names the followed thing (a job's log: ``job_id``; the variances: none), the field of the
    page's header object (the variances' counts) and of its items, and the SSE event name."""

    ws_type: bytes
    items_field: bytes
    sse_event: bytes
    key_field: bytes | None = None
    header_field: bytes | None = None


LOG_FRAMING = Framing(b"logs", b"lines", b"log", key_field=b"job_id")
# The variances' changes: one key, each page headed by the open counts (docs/LIVE_PUSH.md).
VARIANCES_KEY = "variances"
VARIANCE_FRAMING = Framing(b"variances", b"changes", b"variance", header_field=b"counts")


@dataclasses.dataclass(eq=False)
class LogBatch:
    """Items read once for every follower of a key (a job's log lines, the variances' changes),
    each encoded once."""

    job_id: str  # the key followed
    status: str
    numbers: list[int]
    bodies: list[bytes]  # each item's JSON
    complete: bool  # the job has ended and no line follows these
    framing: Framing = LOG_FRAMING
    header: bytes | None = None  # a JSON object sent ahead of the items (the variances' counts)
    _sse: list[bytes] | None = None

    def sse(self, start: int) -> bytes:
        """The SSE frames of the items from index ``start`` (``id:`` is the item's number),
        after the header's frame if the page has one."""
        if self._sse is None:
            event = self.framing.sse_event
            self._sse = [
                b"id: %d\nevent: %s\ndata: %s\n\n" % (n, event, body)
                for n, body in zip(self.numbers, self.bodies, strict=True)
            ]
        head = b""
        if self.header is not None and self.framing.header_field is not None:
            head = b"event: %s\ndata: %s\n\n" % (self.framing.header_field, self.header)
        return head + b"".join(self._sse[start:])

    def ws(self, start: int) -> bytes:
        """One WebSocket message with the items from index ``start``."""
        framing = self.framing
        parts = [b'"type": "%s"' % framing.ws_type]
        if framing.key_field is not None:
            parts.append(b'"%s": "%s"' % (framing.key_field, self.job_id.encode()))
        if self.header is not None and framing.header_field is not None:
            parts.append(b'"%s": %s' % (framing.header_field, self.header))
        parts.append(b'"%s": [%s]' % (framing.items_field, b", ".join(self.bodies[start:])))
        return b"{" + b", ".join(parts) + b"}"

    def end_message(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status}


@dataclasses.dataclass(eq=False)
class LogFollower:
    """One client following one job's log from line ``position`` on. ``deliver(batch, start)``
    gets new lines (from index ``start`` of the batch); ``finish(batch)`` says the log is
    complete; ``gone()`` says the job no longer exists. All three are synchronous and cheap."""

    job_id: str
    position: int
    deliver: Callable[[LogBatch, int], None]
    finish: Callable[[LogBatch], None]
    gone: Callable[[], None]
    done: bool = False
    primed: bool = False  # it has had a page (with the header, where pages have one)


class LogTails:
    """The followers of each key of one kind of tail, and one reader per key."""

    def __init__(self, pool: aiopg.Pool, source: LogSource | None, framing: Framing = LOG_FRAMING) -> None:
        self._pool = pool
        self._source = source  # None: a hub that only pushes (tests of the fanout)
        self._framing = framing
        self._followers: dict[str, set[LogFollower]] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    def follow(self, follower: LogFollower) -> None:
        """Start feeding ``follower``: the stored lines after its position first, then new ones."""
        self._followers.setdefault(follower.job_id, set()).add(follower)
        self.wake(follower.job_id)

    def unfollow(self, follower: LogFollower) -> None:
        follower.done = True
        followers = self._followers.get(follower.job_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[follower.job_id]

    def wake(self, job_id: str) -> None:
        """New lines, or the job ended: read if anyone here follows the job's log."""
        if job_id not in self._followers:
            return
        self._dirty.add(job_id)
        if job_id not in self._readers:
            self._readers[job_id] = asyncio.create_task(self._read(job_id), name=f"log tail {job_id}")

    def wake_all(self) -> None:
        for job_id in list(self._followers):
            self.wake(job_id)

    @property
    def follower_count(self) -> int:
        return sum(len(f) for f in self._followers.values())

    async def close(self) -> None:
        for task in list(self._readers.values()):
            task.cancel()
        await asyncio.gather(*self._readers.values(), return_exceptions=True)

    async def _read(self, job_id: str) -> None:
        try:
            while self._followers.get(job_id) and job_id in self._dirty:
                self._dirty.discard(job_id)
                if await self._read_page(job_id):
                    self._dirty.add(job_id)  # a full page: read on at once
        except Exception as exc:  # the database is away: the next NOTIFY or resync reads again
            log.warning("log tail of %s: %s", job_id, exc)
        finally:
            self._readers.pop(job_id, None)

    async def _read_page(self, job_id: str) -> bool:
        """Read and hand out one page; True if the page was full."""
        followers = self._followers.get(job_id, set())
        start = min(f.position for f in followers)
        if self._source is None:
            raise RuntimeError("this hub has no log source to read from")
        found = await self._source.read_log(self._pool, job_id, start, READ_PAGE)
        if found is None:
            for follower in list(followers):
                self.unfollow(follower)
                follower.gone()
            return False
        full = len(found.numbers) == READ_PAGE
        batch = LogBatch(
            job_id,
            found.status,
            found.numbers,
            found.bodies,
            complete=found.status in TERMINAL_STATUSES and not full,
            framing=self._framing,
            header=found.header,
        )
        last = batch.numbers[-1] if batch.numbers else start
        for follower in list(self._followers.get(job_id, ())):
            if follower.position < start:
                # It came while the page was read, from further back than the page starts: the
                # page says nothing of what it lacks (moving it to the page's end would skip
                # those items for good). follow() marked the key dirty, so the reader reads
                # again from its position.
                continue
            first_new = next((i for i, n in enumerate(batch.numbers) if n > follower.position), None)
            if first_new is None and batch.header is not None and not follower.primed:
                first_new = len(batch.numbers)  # nothing new for it, but the header is: send that
            if first_new is not None:
                follower.deliver(batch, first_new)
                follower.position = max(follower.position, last)
                follower.primed = True
            if batch.complete and follower.position >= last:
                self.unfollow(follower)
                follower.finish(batch)
        return full
