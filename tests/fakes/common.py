"""What both fakes share: injected faults, a request log, and serving on a free loopback port."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@dataclasses.dataclass
class Fault:
    """The next ``times`` requests whose path ends with ``path`` (after ``skip`` matching ones
    pass) get this instead of their answer:

    - ``status``: that HTTP status with ``body`` and, if set, ``Retry-After``;
    - ``hang``: no answer until the fake stops (the client's timeout must end it);
    - ``malformed``: HTTP 200 whose body is not JSON.
    """

    path: str
    kind: str = "status"
    status: int = 500
    retry_after: str | None = None
    body: bytes = b'{"error": "injected"}'
    times: int = 1
    skip: int = 0


@dataclasses.dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = dataclasses.field(default_factory=time.monotonic)  # when it arrived


class FaultPlan:
    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.released = asyncio.Event()

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def take(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times <= 0 or not path.endswith(fault.path):
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.times -= 1
            return fault
        return None

    async def respond(self, fault: Fault) -> web.StreamResponse:
        if fault.kind == "hang":
            await self.released.wait()
            return web.Response(status=503)
        if fault.kind == "malformed":
            return web.Response(status=200, body=b'[{"id": 1, "displayName": "trunc', content_type="application/json")
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return web.Response(status=fault.status, body=fault.body, content_type="application/json", headers=headers)


@asynccontextmanager
async def serve(app: web.Application, faults: FaultPlan) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port); yield its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=1, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        faults.released.set()
        await runner.cleanup()
