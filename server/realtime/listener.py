"""The one LISTEN connection of a server process (docs/ARCHITECTURE.md, rule 4).

A dedicated psycopg2 asynchronous connection, not one from the pool: a pooled connection
would be handed to requests, and LISTEN belongs to a session. Notifications are handed to
``on_notify`` synchronously, from the event loop's reader callback, in the order PostgreSQL
sends them (commit order).

If the connection drops (PostgreSQL restart, ``pg_terminate_backend``, a dead network found by
the periodic ping), the listener reconnects with exponential backoff and jitter, LISTENs again
and then calls ``on_listening`` so that the hub can resynchronise what it missed.

``fence()`` is how the hot-state cache stays exact: it runs one round trip on this connection.
PostgreSQL delivers a listening session's pending notifications before it answers a query, so
when the round trip returns, every notification of a transaction that committed before the
fence started has been handed to ``on_notify``. Concurrent fences share one round trip.

The session's ``application_name`` is listen_connection.APPLICATION_NAME: that is how operators
find it in ``pg_stat_activity`` (to watch it, or to kill it in a drill).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from server.db.prepared import prepared_forms
from server.realtime.listen_connection import (
    CONNECT_TIMEOUT,
    QUERY_TIMEOUT,
    ConnectionLost,
    ListenConnection,
)

log = logging.getLogger(__name__)

CHANNEL = "collector_hub"
# Called with a read's rows (and None), or None and the error that broke the connection first.
RowsOrError = Callable[[list[tuple[Any, ...]] | None, Exception | None], None]
BACKOFF_BASE = 0.2
# How many re-reads' statements (one per batch followed) are kept ready to send; all are
# forgotten past this many, and put together again on their next read.
QUERY_MEMORY = 1000


def _no_answer_needed(cursor: Any, error: Exception | None) -> None:
    """A PREPARE's answer: nothing to read (one that fails breaks the connection, and the
    reads queued after it are answered with the error)."""


class Listener:
    """Holds the LISTEN connection open for the life of the app; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        on_notify: Callable[[str], None],
        on_listening: Callable[[], Awaitable[None]],
        *,
        ping_interval: float = 10.0,
        max_backoff: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._on_notify = on_notify
        self._on_listening = on_listening
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self.listening = False  # state == "listening", kept with it: read on every re-read
        self.state = "starting"
        self.generation = 0  # bumped on every (re)connect; cached state is per generation
        self.reconnects = 0
        self.last_error: str | None = None
        self.connected_at: float | None = None
        self.last_db_time: dt.datetime | None = None  # PostgreSQL's clock at the last good round trip
        self.backend_pid: int | None = None
        self.reads = 0  # statements run for ``read`` (live push's re-reads)
        self._prepared: dict[str, str] = {}  # statement -> its EXECUTE, on the connection now
        # (statement, parameters) -> its EXECUTE with the parameters in it, as sent (QUERY_MEMORY)
        self._queries: dict[tuple[str, tuple[Any, ...]], bytes] = {}
        self._db_clock: tuple[dt.datetime, float] = (dt.datetime.now(dt.UTC), time.monotonic())
        self._conn: ListenConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._fence_wanted = asyncio.Event()
        self._fence_waiters: list[asyncio.Future[bool]] = []

    @property
    def state(self) -> str:
        """starting, listening, reconnecting or stopped (/readyz shows it)."""
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        self._state = state
        self.listening = state == "listening"

    async def start(self, wait: float = CONNECT_TIMEOUT) -> None:
        """Start the loop and wait (up to ``wait`` seconds) for the first LISTEN, so that an app
        that has started does not miss the first writes."""
        self._task = asyncio.create_task(self._run(), name="collector-hub listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait)

    async def stop(self) -> None:
        self.state = "stopped"
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._release_fences(False)

    async def fence(self) -> bool:
        """Wait until every notification committed before this call has been dispatched.
        False when the listener is not connected (the caller must read the database)."""
        if not self.listening:
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._fence_waiters.append(waiter)
        self._fence_wanted.set()
        return await waiter

    async def read(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]] | None:
        """Run one read-only statement on this connection: its column names and rows, or None
        when the connection is not listening or breaks (the caller reads from the pool).
        ``read_rows`` is the same without a coroutine."""
        conn = self._conn
        if conn is None or not self.listening:
            return None
        try:
            result = await conn.fetch(self._prepared_form(conn, sql), params)
        except ConnectionLost:
            return None
        self.reads += 1
        return result

    def read_rows(self, sql: str, params: Sequence[Any], done: RowsOrError) -> bool:
        """Run one read-only statement on this connection and hand its rows to ``done``
        (``None`` and the error: the connection broke first), from the callback that reads
        them, with no wrapper between (docs/LIVE_PUSH.md, the fixed cost per state); False,
        and ``done`` is never called, when the connection is not listening (the caller reads
        from the pool).

        This is how live push re-reads what a notification names (docs/LIVE_PUSH.md, the fixed
        cost per state): no pool checkout, no task, and the answer doubles as a fence, since
        every notification committed before the statement started is dispatched before its
        rows. A statement that fails here is treated as a broken connection (reconnect,
        resync), so only statements that cannot fail on good data belong here.

        Each statement is prepared on the connection the first time it is read (again after a
        reconnect): PostgreSQL parses and plans it once, and each read sends only its name and
        parameters."""
        conn = self._conn
        if conn is None or not self.listening:
            return False
        # The same batch is re-read on every one of its states: its EXECUTE is put together
        # (the parameters quoted into it) once, and sent as it is after that.
        key = (sql, tuple(params))
        try:
            query = self._queries.get(key)
            if query is None:
                query = conn.mogrify(self._prepared_form(conn, sql), params)
                if len(self._queries) >= QUERY_MEMORY:
                    self._queries.clear()
                self._queries[key] = query
            conn.submit(query, None, done, QUERY_TIMEOUT, True)  # with its rows: no wrapper, no keyword
        except ConnectionLost:
            return False
        self.reads += 1
        return True

    def _prepared_form(self, conn: ListenConnection, sql: str) -> str:
        """``EXECUTE`` of ``sql`` (its parameters ``%s``, psycopg2's placeholders), prepared on
        ``conn`` first if it is not yet; statements run in order, so the PREPARE runs first."""
        execute = self._prepared.get(sql)
        if execute is None:
            prepare, execute = prepared_forms(f"collector_hub_read_{len(self._prepared) + 1}", sql)
            conn.submit(prepare, None, _no_answer_needed)
            self._prepared[sql] = execute
        return execute

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reconnects": self.reconnects,
            "connected_for_seconds": round(time.monotonic() - self.connected_at, 1)
            if self.connected_at is not None and self.listening
            else None,
            "last_error": self.last_error,
        }

    def _release_fences(self, result: bool) -> None:
        waiters, self._fence_waiters = self._fence_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)

    async def _run(self) -> None:
        failures = 0
        while True:
            conn: ListenConnection | None = None
            try:
                conn = ListenConnection(self._dsn, self._on_notify)
                await conn.connect()
                rows = await conn.execute("SELECT clock_timestamp()")
                self._db_clock = (rows[0][0], time.monotonic())
                await conn.execute(f"LISTEN {CHANNEL}")
                self.backend_pid = conn.backend_pid()
                self._prepared = {}  # a new session: nothing prepared in it yet
                self._queries = {}
                self._conn = conn
                self.generation += 1
                self.state = "listening"
                self.connected_at = time.monotonic()
                self._listening.set()
                if failures or self.generation > 1:
                    log.info("listener: listening again (generation %s)", self.generation)
                failures = 0
                await self._on_listening()
                await self._serve(conn)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.close()
                raise
            except Exception as exc:
                self.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                log.warning("listener: connection lost or refused: %s", self.last_error)
            if conn is not None:
                conn.close()
            self._conn = None
            self.state = "reconnecting"
            self._listening.clear()
            self._release_fences(False)
            failures += 1
            self.reconnects += 1
            delay = min(self._max_backoff, BACKOFF_BASE * 2 ** min(failures, 10))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _serve(self, conn: ListenConnection) -> None:
        """Answer fences; ping when idle so that a silently dead connection is found."""
        while True:
            wanted: asyncio.Future[Any] = asyncio.ensure_future(self._fence_wanted.wait())
            try:
                await asyncio.wait({wanted, conn.lost}, timeout=self._ping_interval, return_when="FIRST_COMPLETED")
            finally:
                wanted.cancel()
            if conn.lost.done():
                conn.lost.result()  # raises ConnectionLost
            self._fence_wanted.clear()
            waiters, self._fence_waiters = self._fence_waiters, []
            ok = False
            try:
                await conn.execute("SELECT 1")  # the round trip that is the fence (or the ping)
                db_time, at = self._db_clock
                self.last_db_time = db_time + dt.timedelta(seconds=time.monotonic() - at)
                ok = True
            finally:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(ok)
