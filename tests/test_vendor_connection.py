"""The vendor collectors' HTTP connection (collectors/vendor_connection.py): the standard
library's client awaited from asyncio. The vendor fakes cover retries, timeouts and errors end
to end (tests/test_inventory_*.py); this covers what the fakes do not show: the import cost, a
kept-alive connection reused, gzip, TLS verified, and a cancelled request let go at once."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from collectors.vendor_connection import HttpSession
from tests.support.tls import self_signed_certificate


def test_a_vendor_collector_imports_no_aiohttp() -> None:
    """Importing aiohttp cost each collector process about 0.2 to 0.3 s of CPU at start."""
    code = (
        "import sys, collectors.ninja, collectors.threatlocker\nprint(sorted(m for m in sys.modules if 'aiohttp' in m))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


class Recorder:
    def __init__(self) -> None:
        self.peers: list[object] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.hang = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peername"))
        self.requests.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        if request.path == "/hang":
            await self.hang.wait()
        if request.path == "/moved":
            raise web.HTTPFound("/elsewhere")
        response = web.json_response([{"id": n} for n in range(200)])
        response.enable_compression(web.ContentCoding.gzip)
        return response


@asynccontextmanager
async def fake_vendor(recorder: Recorder, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, shutdown_timeout=1, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        recorder.hang.set()
        await runner.cleanup()


async def test_one_kept_alive_connection_carries_every_request_and_gzip_is_undone() -> None:
    recorder = Recorder()
    async with fake_vendor(recorder) as url, HttpSession() as session:
        answers = [
            await session.request("GET", f"{url}/v2/devices?pageSize=2", headers={}, body=None, socket_timeout=5),
            await session.request(
                "POST", f"{url}/token", headers={"Content-Type": "x/y"}, body=b"a=1", socket_timeout=5
            ),
            await session.request("GET", f"{url}/moved", headers={}, body=None, socket_timeout=5),
        ]
    assert [a.status for a in answers[:2]] == [200, 200]
    assert answers[0].body.startswith(b'[{"id": 0}, {"id": 1}')
    assert answers[0].headers.get("content-encoding") == "gzip"  # it came compressed
    assert answers[2].status == 302 and answers[2].headers.get("Location") == "/elsewhere"  # not followed
    assert len(recorder.requests) == 3 and len(set(recorder.peers)) == 1  # one connection
    method, target, headers, body = recorder.requests[1]
    assert (method, target, body) == ("POST", "/token", b"a=1")
    assert headers["Content-Type"] == "x/y" and headers["Accept-Encoding"] == "gzip"


async def test_a_cancelled_request_is_let_go_at_once_and_its_connection_replaced() -> None:
    recorder = Recorder()
    async with fake_vendor(recorder) as url, HttpSession() as session:
        await session.request("GET", f"{url}/first", headers={}, body=None, socket_timeout=600)
        # Held for longer than the test may last (pytest's timeout): only letting go ends it.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await session.request("GET", f"{url}/hang", headers={}, body=None, socket_timeout=600)
        after = await session.request("GET", f"{url}/after", headers={}, body=None, socket_timeout=600)
    assert after.status == 200 and recorder.peers[0] == recorder.peers[1] != recorder.peers[2]


async def test_tls_is_verified_against_the_trusted_certificates(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    recorder = Recorder()
    async with fake_vendor(recorder, tls) as url:
        async with HttpSession() as session:
            with pytest.raises(ssl.SSLCertVerificationError):
                await session.request("GET", f"{url}/x", headers={}, body=None, socket_timeout=5)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted, for 127.0.0.1 (its SAN)
        async with HttpSession() as session:
            answer = await session.request("GET", f"{url}/x", headers={}, body=None, socket_timeout=5)
    assert answer.status == 200 and len(recorder.requests) == 1
