"""The LISTEN connection itself: a psycopg2 asynchronous connection driven by the event loop,
running one statement at a time (listener.py keeps it open, reconnects and resyncs).

Notifications are handed to ``on_notify`` synchronously, from the event loop's reader callback,
in the order PostgreSQL sends them (commit order), and each statement's answer to its callback
from the same reader callback: live push's re-read of a batch goes from the NOTIFY to the
fanout without a task, a lock, a future or a timer per state (docs/LIVE_PUSH.md, the fixed cost
per state).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg2
import psycopg2.extensions

log = logging.getLogger(__name__)

# How the LISTEN session shows in pg_stat_activity, where operators (and tests) find it.
APPLICATION_NAME = "collector-hub listener"
CONNECT_TIMEOUT = 10.0
QUERY_TIMEOUT = 10.0
# psycopg2's poll states, looked up once rather than through two modules on every poll.
_POLL_OK = psycopg2.extensions.POLL_OK
_POLL_READ = psycopg2.extensions.POLL_READ
_POLL_WRITE = psycopg2.extensions.POLL_WRITE


class ConnectionLost(Exception):
    """The LISTEN connection broke."""


# Called with the statement's cursor once its answer is in (None and the error when the
# connection broke first); the cursor is valid only during the call. A statement submitted
# with ``rows=True`` gets its rows (``fetchall``) instead of the cursor.
StatementDone = Callable[[Any, Exception | None], None]


class ListenConnection:
    """A psycopg2 ``async_`` connection driven by the event loop (as aiopg does), so that
    notifications can be dispatched in the same callback that reads them.

    Statements run one at a time, in the order submitted, each answered by a plain callback
    from the reader callback that reads its result: no task, lock, future or timer per
    statement (docs/LIVE_PUSH.md, the fixed cost per state). One watchdog timer, armed while a
    statement is out, breaks the connection when PostgreSQL does not answer in time."""

    def __init__(self, dsn: str, on_notify: Callable[[str], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_notify = on_notify
        self._conn = psycopg2.connect(
            dsn,
            async_=True,
            application_name=APPLICATION_NAME,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        self._fd: int | None = self._conn.fileno()
        self._writing = False
        self._waiter: asyncio.Future[None] | None = None  # the connection attempt
        self._cursor: Any = None  # one cursor for every statement (made once connected)
        self._queue: collections.deque[tuple[str | bytes, Sequence[Any] | None, StatementDone, float, bool]] = (
            collections.deque()
        )
        self._current: StatementDone | None = None  # the statement out, if any
        self._current_rows = False  # whether it is answered with its rows
        self._deadline = 0.0  # when the statement out times out (loop time)
        self._timeout = QUERY_TIMEOUT
        self._watchdog: asyncio.TimerHandle | None = None
        self._polling = False  # inside _ready: submissions wait for its end
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.lost.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._loop.add_reader(self._fd, self._ready)

    def _ready(self) -> None:
        # Every state goes through here twice (its NOTIFY, then its re-read's rows), so the
        # dispatch and the answer are written out in it (docs/LIVE_PUSH.md, the fixed cost
        # per state).
        self._polling = True
        try:
            state = self._conn.poll()
            while self._conn.notifies:
                payload = self._conn.notifies.pop(0).payload
                try:
                    self._on_notify(payload)
                except Exception:  # a bug in one handler must not kill the listener
                    log.exception("handling notification %r failed", payload[:200])
        except psycopg2.Error as exc:
            self._polling = False
            self._fail(ConnectionLost(str(exc).strip() or type(exc).__name__))
            return
        if state == _POLL_OK:
            if self._writing:
                self._set_writing(False)
            done = self._current
            if done is not None:
                self._current = None
                try:
                    done(self._cursor.fetchall() if self._current_rows else self._cursor, None)
                except Exception:  # a bug in one reader must not kill the listener
                    log.exception("handling a statement's answer failed")
            elif self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
        elif state == _POLL_WRITE:
            if not self._writing:
                self._set_writing(True)
        elif state == _POLL_READ:
            if self._writing:
                self._set_writing(False)
        self._polling = False
        if self._current is None and self._queue and self._fd is not None:
            self._start_next()

    def _answer(self, done: StatementDone, cursor: Any, error: Exception | None) -> None:
        try:
            done(cursor, error)
        except Exception:  # a bug in one reader must not kill the listener
            log.exception("handling a statement's answer failed")

    def _set_writing(self, writing: bool) -> None:
        if self._fd is None or writing == self._writing:
            return
        if writing:
            self._loop.add_writer(self._fd, self._ready)
        else:
            self._loop.remove_writer(self._fd)
        self._writing = writing

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if not self.lost.done():
            self.lost.set_exception(exc)
        self.close(exc)

    async def connect(self) -> None:
        """Wait for the connection (asynchronous connections are always autocommit)."""
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(CONNECT_TIMEOUT, self._connect_timed_out, waiter)
        try:
            self._ready()
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        self._cursor = self._conn.cursor()

    def _connect_timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._fail(ConnectionLost(f"no answer from PostgreSQL within {CONNECT_TIMEOUT:g}s"))

    def submit(
        self,
        sql: str | bytes,
        params: Sequence[Any] | None,
        done: StatementDone,
        seconds: float = QUERY_TIMEOUT,
        rows: bool = False,
    ) -> None:
        """Run one statement after those submitted before it; ``done`` gets its cursor, or
        with ``rows`` its rows (None and the error that broke the connection, if it did:
        StatementDone). Raises ConnectionLost when closed. ``sql`` may be bytes from
        ``mogrify``, sent as they are (then without ``params``)."""
        if self._fd is None or self._cursor is None:
            raise ConnectionLost("connection closed")
        self._queue.append((sql, params, done, seconds, rows))
        if self._current is None and not self._polling:
            self._start_next()

    def mogrify(self, sql: str, params: Sequence[Any]) -> bytes:
        """``sql`` with ``params`` quoted into it, as psycopg2 would send it (no round trip).
        Raises ConnectionLost when closed."""
        if self._fd is None or self._cursor is None:
            raise ConnectionLost("connection closed")
        query: bytes = self._cursor.mogrify(sql, params)
        return query

    def _start_next(self) -> None:
        sql, params, done, seconds, rows = self._queue.popleft()
        try:
            self._cursor.execute(sql, params)
        except psycopg2.Error as exc:
            self._queue.appendleft((sql, params, done, seconds, rows))
            self._fail(ConnectionLost(str(exc).strip() or type(exc).__name__))
            return
        self._current = done
        self._current_rows = rows
        self._timeout = seconds
        # The loop's clock is time.monotonic() on asyncio's loop and uvloop's alike (one call
        # less than loop.time() on asyncio's); the watchdog compares it with loop.time().
        self._deadline = time.monotonic() + seconds
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._deadline, self._watch)
        # What the socket took is sent: almost always the whole statement, and PostgreSQL has
        # not answered yet, so the poll says "read" and nothing else is to be done until the
        # reader callback (one call of _ready less for every state). Anything else (a statement
        # the socket did not take whole, notifications or the answer already in) goes through
        # _ready, which polls again.
        try:
            state = self._conn.poll()
        except psycopg2.Error as exc:
            self._fail(ConnectionLost(str(exc).strip() or type(exc).__name__))
            return
        if state != _POLL_READ or self._conn.notifies or self._writing:
            self._ready()

    def _watch(self) -> None:
        """The watchdog: break the connection if the statement out is overdue, else come back
        when it would be (one timer while statements keep coming, not one per statement)."""
        self._watchdog = None
        if self._current is None or self._fd is None:
            return
        if self._loop.time() >= self._deadline:
            self._fail(ConnectionLost(f"no answer from PostgreSQL within {self._timeout:g}s"))
        else:
            self._watchdog = self._loop.call_at(self._deadline, self._watch)

    async def fetch(
        self, sql: str, params: Sequence[Any] | None, seconds: float = QUERY_TIMEOUT
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement; its column names and rows."""
        answer: asyncio.Future[tuple[list[str], list[tuple[Any, ...]]]] = self._loop.create_future()

        def done(cursor: Any, error: Exception | None) -> None:
            if answer.done():
                return  # the caller was cancelled
            if error is not None:
                answer.set_exception(error)
            elif cursor.description is None:
                answer.set_result(([], []))
            else:
                answer.set_result(([column.name for column in cursor.description], cursor.fetchall()))

        self.submit(sql, params, done, seconds)
        return await answer

    async def execute(self, sql: str, seconds: float = QUERY_TIMEOUT) -> list[tuple[Any, ...]]:
        return (await self.fetch(sql, None, seconds))[1]

    def backend_pid(self) -> int:
        return int(self._conn.get_backend_pid())

    def close(self, error: Exception | None = None) -> None:
        """Close the connection; statements still out or queued are answered with ``error``
        (by default ConnectionLost), so that no reader waits for an answer that cannot come."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            if self._writing:
                self._loop.remove_writer(self._fd)
                self._writing = False
            self._fd = None
        with contextlib.suppress(Exception):
            self._conn.close()
        unanswered = [self._current] if self._current is not None else []
        unanswered += [done for _, _, done, _, _ in self._queue]
        self._current = None
        self._queue.clear()
        for done in unanswered:
            self._answer(done, None, error or ConnectionLost("connection closed"))
