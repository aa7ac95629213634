"""The vendor collectors' HTTP client (collectors/vendor_connection.py) against a raw socket
server that answers in each framing HTTP/1.1 allows; the vendor fakes cover the rest end to end."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from collectors.vendor_connection import HttpConnectError, HttpProtocolError, HttpSession

Answer = Callable[[bytes], bytes]  # the request's head and body -> the raw answer


class RawServer:
    def __init__(self, answers: list[Answer], close_after: bool = False) -> None:
        self.answers = answers
        self.close_after = close_after  # close each connection after one answer, without saying so
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                writer.write(self.answers.pop(0)(request))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_server(server: RawServer) -> AsyncIterator[str]:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listening.close()


def fixed(status: str, headers: list[str], body: bytes) -> Answer:
    return lambda _: (f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode() + body


def test_a_collector_process_does_not_import_aiohttp() -> None:
    """Importing aiohttp's client costs a collector process about 0.3 s of CPU at start."""
    code = (
        "import sys, collectors.ninja, collectors.threatlocker; print(sorted(m for m in sys.modules if 'aiohttp' in m))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


async def test_kept_alive_connections_are_reused_and_every_framing_is_read() -> None:
    body = json.dumps([{"id": n} for n in range(300)]).encode()
    chunked = (
        b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (body[:100], body[100:]))
        + b"0\r\nX-T: 1\r\n\r\n"
    )
    server = RawServer(
        [
            fixed("200 OK", [f"Content-Length: {len(body)}"], body),
            fixed("200 OK", ["Transfer-Encoding: chunked"], chunked),
            fixed(
                "200 OK", ["Content-Encoding: gzip", f"Content-Length: {len(gzip.compress(body))}"], gzip.compress(body)
            ),
            fixed(
                "200 OK",
                ["Content-Encoding: deflate", f"Content-Length: {len(zlib.compress(body))}"],
                zlib.compress(body),
            ),
            lambda r: b"HTTP/1.1 100 Continue\r\n\r\n" + fixed("204 No Content", [], b"")(r),  # interim first
            fixed("200 OK", ["Connection: close"], body),  # ends with the connection
        ]
    )
    async with raw_server(server) as url, HttpSession() as session:
        answers = [
            await session.request("GET", url + "/v2/devices", params={"pageSize": 2, "after": "a b"}),
            await session.request("POST", url + "/x", body=b'{"a": 1}', content_type="application/json"),
            await session.request("GET", url + "/gz", headers={"Authorization": "Bearer t"}),
            await session.request("GET", url + "/deflate"),
            await session.request("GET", url + "/interim"),
            await session.request("GET", url + "/close"),
        ]
    assert [a.status for a in answers] == [200, 200, 200, 200, 204, 200]
    assert [a.body for a in answers] == [body, body, body, body, b"", body]
    assert answers[1].headers["transfer-encoding"] == "chunked"  # headers are case-insensitive
    assert server.connections == 1
    first, post, gz = server.requests[:3]
    assert first.startswith(b"GET /v2/devices?pageSize=2&after=a+b HTTP/1.1\r\n") and b"\r\nHost: 127.0.0.1:" in first
    assert b"\r\nAccept-Encoding: gzip, deflate\r\n" in first
    assert post.endswith(b'Content-Type: application/json\r\nContent-Length: 8\r\n\r\n{"a": 1}')
    assert b"\r\nAuthorization: Bearer t\r\n" in gz


async def test_a_connection_the_server_closed_is_replaced_and_one_that_said_close_is_not_reused() -> None:
    body = b"[]"
    server = RawServer([fixed("200 OK", [f"Content-Length: {len(body)}"], body) for _ in range(3)], close_after=True)
    async with raw_server(server) as url, HttpSession() as session:
        for _ in range(3):
            assert (await session.request("GET", url + "/")).body == body
    assert server.connections == 3


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", HttpProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", HttpProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", HttpProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", HttpConnectError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HttpProtocolError),
    ],
)
async def test_an_answer_that_is_not_http_fails_clearly(answer: bytes, error: type[Exception]) -> None:
    server = RawServer([lambda _: answer], close_after=True)
    async with raw_server(server) as url, HttpSession() as session:
        with pytest.raises(error):
            await session.request("GET", url + "/")


async def test_a_header_value_with_a_line_break_is_never_sent_and_a_closed_port_cannot_connect() -> None:
    server = RawServer([fixed("200 OK", ["Content-Length: 0"], b"")])
    async with raw_server(server) as url, HttpSession() as session:
        with pytest.raises(HttpProtocolError, match="Authorization") as refused:
            await session.request("GET", url + "/", headers={"Authorization": "token\r\nX-Injected: 1"})
        assert "token" not in str(refused.value)
        with pytest.raises(HttpConnectError, match=r"127\.0\.0\.1:9"):
            await session.request("GET", "http://127.0.0.1:9/")
    assert server.requests == []
