"""The app on a real port, served the way ``collector-hub serve`` serves it, for a real browser."""

from __future__ import annotations

from aiohttp import web
from yarl import URL

HOST = "127.0.0.1"


class LiveServer:
    """``app`` behind aiohttp's ``AppRunner`` with its defaults, as ``web.run_app`` (and so
    ``serve``) runs it: a request whose client goes away is still handled to its end.

    Not aiohttp's ``TestServer``: it cancels the handler instead (``handler_cancellation``), which
    ``serve`` never does, and a static file's ``FileResponse`` cancelled while a worker thread
    opens the file drops that open file unclosed. A browser leaving a page mid-load (a
    navigation, a closed context) left a file of ``static/`` open: a ResourceWarning, an error in
    this suite (tests/test_live_server.py)."""

    def __init__(self, app: web.Application, port: int | None = None, shutdown_timeout: float = 10.0) -> None:
        self.app = app
        self.port = port or 0
        self.runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
        self._started = False

    async def start_server(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, HOST, self.port)
        await site.start()
        self._started = True
        self.port = self.runner.addresses[0][1]

    def make_url(self, path: str) -> URL:
        return URL(f"http://{HOST}:{self.port}").join(URL(path))

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self.runner.cleanup()
