"""HTTP/1.1 to a vendor's API, on asyncio streams: what the vendor collectors need, no more.

A collector is a process of its own, started for each run; importing aiohttp's client cost it
about 0.3 s of CPU before its first request (it builds two TLS contexts at import), a third of
a 5,000-device run. This client is the part of HTTP the vendor APIs use:

- one request at a time per connection, kept alive and reused (``Connection: keep-alive``); a
  reused connection the server closed meanwhile is replaced once, before anything was read;
- ``https`` with the system's certificate store and host name checking (the TLS context is made
  on the first ``https`` request), plain ``http`` for local fakes;
- bodies framed by ``Content-Length``, ``chunked`` or the end of the connection; ``gzip`` and
  ``deflate`` asked for and undone;
- no deadline of its own: the caller puts one around the whole exchange, connecting to the
  last byte;
- no redirects followed, no proxy, no cookies (none of which the collectors used).

Failures raise :class:`HttpConnectError` (cannot connect, or the connection broke) or
:class:`HttpProtocolError` (an answer that is not HTTP/1.1), whose text holds no header value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import urllib.parse
import zlib
from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

USER_AGENT = "collector-hub"
MAX_LINE = 65536  # bytes in a status line, a header line or a chunk size line
MAX_HEADERS = 200
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpError(Exception):
    """An HTTP exchange failed; the message names no header value."""


class HttpConnectError(HttpError):
    """The server could not be reached, or the connection broke before the answer was whole."""


class HttpProtocolError(HttpError):
    """The answer is not well-formed HTTP/1.1 (or a request could not be sent as such)."""


@dataclasses.dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class _StaleConnection(Exception):
    """A kept-alive connection was closed by the server before it answered."""


class HttpSession:
    """Kept-alive connections to the hosts a collector talks to; ``async with`` closes them."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def __aenter__(self) -> HttpSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.transport.abort()
        self._idle.clear()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """One request and its whole answer. The caller bounds the time (``asyncio.timeout``);
        a connection left half-way by a cancellation is closed, never reused."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpProtocolError(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = parts.path or "/"
        query = "&".join(q for q in (parts.query, urllib.parse.urlencode(params or {})) if q)
        lines = [f"{method} {target}{'?' + query if query else ''} HTTP/1.1", f"Host: {parts.netloc}"]
        fields = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
        fields.update(headers or {})
        if content_type is not None:
            fields["Content-Type"] = content_type
        if body is not None or method in ("POST", "PUT", "PATCH"):
            fields["Content-Length"] = str(len(body or b""))
        for name, value in fields.items():
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise HttpProtocolError(f"the value of the request header {name} holds a line break or NUL")
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "strict") + (body or b"")
        key = (parts.scheme, parts.hostname, port)
        idle = self._idle.setdefault(key, [])
        while idle:  # a kept-alive connection, unless the server closed it meanwhile
            connection = idle.pop()
            try:
                return await self._exchange(key, connection, request, method)
            except _StaleConnection:
                continue
        try:
            return await self._exchange(key, await self._connect(key), request, method)
        except _StaleConnection:
            raise HttpConnectError("the server closed the connection without answering") from None

    async def _connect(self, key: tuple[str, str, int]) -> Connection:
        scheme, host, port = key
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            return await asyncio.open_connection(host, port, ssl=tls, limit=MAX_LINE)
        except (OSError, ssl.SSLError) as exc:
            raise HttpConnectError(f"{host}:{port}: {exc.strerror or exc}") from None

    async def _exchange(
        self, key: tuple[str, str, int], connection: Connection, request: bytes, method: str
    ) -> HttpAnswer:
        reader, writer = connection
        reusable = False
        received = False
        try:
            writer.write(request)
            await writer.drain()
            while True:
                status_line = await reader.readline()
                if not status_line:
                    raise _StaleConnection
                received = True
                version, status, headers = _status_and_headers(status_line, await _header_lines(reader))
                if status >= 200 or status < 100:
                    break  # 1xx answers are interim: the final one follows
            body, framed = await _body(reader, headers, status, method)
            answer = HttpAnswer(status, CIMultiDictProxy(headers), _decoded(body, headers))
            reusable = framed and _keeps_alive(version, headers)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if not received:
                raise _StaleConnection from None
            raise HttpConnectError(f"the connection broke during the answer ({type(exc).__name__})") from None
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise HttpProtocolError(f"a malformed answer ({exc})") from None
        finally:
            if not reusable:
                writer.transport.abort()
        self._idle.setdefault(key, []).append(connection)
        return answer


async def _header_lines(reader: asyncio.StreamReader) -> list[bytes]:
    lines: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\n")
        if line in (b"\r\n", b"\n"):
            return lines
        if len(lines) == MAX_HEADERS:
            raise ValueError(f"more than {MAX_HEADERS} header lines")
        lines.append(line)


def _status_and_headers(status_line: bytes, lines: list[bytes]) -> tuple[str, int, CIMultiDict[str]]:
    version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ValueError("not an HTTP/1.x status line")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError("a header line without a name")
        headers.add(name, value.strip())
    return version, int(code), headers


async def _body(
    reader: asyncio.StreamReader, headers: CIMultiDict[str], status: int, method: str
) -> tuple[bytes, bool]:
    """The body's bytes, and whether its end was framed (so the connection can be reused)."""
    if method == "HEAD" or status in (204, 304):
        return b"", True
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size_line = (await reader.readuntil(b"\n")).split(b";", 1)[0].strip()
            size = int(size_line, 16)
            if size < 0:
                raise ValueError("a negative chunk size")
            if size == 0:
                await _header_lines(reader)  # trailers, ignored
                return b"".join(chunks), True
            chunks.append(await reader.readexactly(size))
            if (await reader.readuntil(b"\n")).strip():
                raise ValueError("a chunk longer than its size")
    length = headers.get("Content-Length")
    if length is not None:
        if not length.isdigit():
            raise ValueError("a Content-Length that is not a number")
        return await reader.readexactly(int(length)), True
    return await reader.read(), False


def _keeps_alive(version: str, headers: CIMultiDict[str]) -> bool:
    connection = headers.get("Connection", "").lower()
    return "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)


def _decoded(body: bytes, headers: CIMultiDict[str]) -> bytes:
    encoding = headers.get("Content-Encoding", "").strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise ValueError(f"a {encoding} body that does not decompress: {exc}") from None
    return body
