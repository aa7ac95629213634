"""The browser tests' server (tests/support/live_server.py) handles a request whose client has
gone to its end, as ``collector-hub serve`` does: a console file whose request is abandoned
while the file is being opened is closed, not left open (a ResourceWarning, once, at the
teardown of a browser test that navigated away mid-load)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from server.package_data import STATIC_DIR
from server.service.static_routes import setup_static_routes
from tests.support.conditions import eventually
from tests.support.live_server import LiveServer

FILE = STATIC_DIR / "console" / "logs.js"


class HeldExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's worker threads; aiohttp opens a static file in one. The call that leaves
    ``FILE`` open is held before it returns (``opened`` is set) until ``release`` is set, so the
    request can be abandoned meanwhile."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.opened = threading.Event()
        self.release = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        def held() -> Any:
            result = fn(*args, **kwargs)
            if open_copies(FILE):
                self.opened.set()
                self.release.wait(timeout=30)
            return result

        return super().submit(held)


def open_copies(path: Path) -> int:
    """How many descriptors of this process are open on ``path``."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            pass
    return found


async def test_a_static_file_abandoned_while_it_is_opened_is_closed() -> None:
    executor = HeldExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    app = web.Application()
    setup_static_routes(app)
    server = LiveServer(app)
    await server.start_server()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /static/console/logs.js HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await eventually(lambda: asyncio.sleep(0, executor.opened.is_set()), what="the file opened")
            assert server.runner.server is not None
            (connection,) = server.runner.server.connections
            writer.close()  # the browser goes away while the file is being opened
            await writer.wait_closed()
            await eventually(lambda: asyncio.sleep(0, connection.transport is None), what="the server to see it gone")
            executor.release.set()
            await eventually(lambda: asyncio.sleep(0, open_copies(FILE) == 0), what="the file closed")
            gc.collect()
        finally:
            executor.release.set()
            await server.close()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []
