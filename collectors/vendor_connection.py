"""The vendor collectors' HTTP connection: the standard library's ``http.client`` and ``ssl``,
awaited from the collectors' asyncio code.

``http.client`` does the protocol (framing, chunked bodies, interim answers, header values
checked) and ``ssl`` the TLS (the system's trusted certificates, the host name checked). This
module adds what the collectors had from aiohttp's client: a kept-alive connection reused from
one request to the next (replaced when the server has closed it meanwhile), gzip asked for and
undone, and an await that a cancellation (or the caller's deadline) ends at once. No redirect is
followed, and neither proxy variables nor cookies are used (none of the vendor APIs needs them).

Why not aiohttp: importing it is most of what a collector process spends starting (about 0.2
to 0.3 s of CPU, against a collector that may read a few pages), and nothing here needs more
than one request at a time.

Each exchange runs in a daemon thread of its own and settles a future of the event loop: a run
cancelled between pages (SIGTERM) never waits for an answer it no longer wants, and a deadline
that passes shuts the connection down, which ends the thread's read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.message
import gzip
import http.client
import select
import socket
import ssl
import threading
import zlib
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "collector-hub"


@dataclasses.dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: email.message.Message  # names case-insensitive, as HTTP has them
    body: bytes


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (cancelled, or past its deadline)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _exchange(
    conn: http.client.HTTPConnection, method: str, target: str, body: bytes | None, headers: dict[str, str]
) -> HttpAnswer:
    """One request and its whole answer, on the calling (worker) thread."""
    try:
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        if resp.headers.get("Content-Encoding", "").strip().lower() == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error):
                raise http.client.HTTPException("a gzip body that does not decompress") from None
        return HttpAnswer(resp.status, resp.headers, raw)
    except BaseException:
        conn.close()
        raise


def _closed_by_peer(sock: socket.socket | None) -> bool:
    """Whether a kept-alive connection can no longer carry a request: readable while idle
    means the server closed it (or sent what no request asked for)."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class HttpSession:
    """One connection at a time to one vendor; ``async with HttpSession() as session``."""

    def __init__(self) -> None:
        self._conn: http.client.HTTPConnection | None = None
        self._origin: tuple[str, str, int] | None = None
        self._tls: ssl.SSLContext | None = None

    async def __aenter__(self) -> HttpSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection; a thread still reading it is woken by the shutdown."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        conn.close()

    def _connection(self, scheme: str, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
        origin = (scheme, host, port)
        conn = self._conn
        if conn is not None and (origin != self._origin or _closed_by_peer(conn.sock)):
            conn.close()
            conn = None
        if conn is None:
            if scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            self._conn, self._origin = conn, origin
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    async def request(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None, socket_timeout: float
    ) -> HttpAnswer:
        """Send one request and read its whole answer; raises OSError (cannot connect, connection
        lost, TLS refused, ``TimeoutError`` when the socket waits ``socket_timeout`` seconds) or
        http.client.HTTPException (an answer that is not HTTP). The caller puts its deadline on
        the whole exchange (``asyncio.timeout``); cancelled, this drops the connection."""
        parts = urlsplit(url)
        default_port = 443 if parts.scheme == "https" else 80
        conn = self._connection(parts.scheme, parts.hostname or "", parts.port or default_port, socket_timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", **headers}
        loop = asyncio.get_running_loop()
        future: asyncio.Future[HttpAnswer] = loop.create_future()

        def work() -> None:
            result, error = None, None
            try:
                result = _exchange(conn, method, target, body, sent)
            except BaseException as exc:  # handed to the awaiting task
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, error)

        threading.Thread(target=work, name="vendor-http", daemon=True).start()
        try:
            return await future
        except BaseException:
            if self._conn is conn:
                self.close()
            raise
