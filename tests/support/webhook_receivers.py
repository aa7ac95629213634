"""A real HTTP receiver on loopback for webhook tests: it records every request (raw body and
headers) and answers with whatever the test scripts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclasses.dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def delivery_id(self) -> str:
        return self.headers["webhook-id"]


Answer = Callable[[Received], web.StreamResponse]


def ok(_: Received) -> web.StreamResponse:
    return web.Response(status=200, text="thanks")


class Receiver:
    """``answer`` decides each response; change it while the test runs."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer: Answer = ok
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(await request.read(), {k.lower(): v for k, v in request.headers.items()})
        self.received.append(got)
        return self.answer(got)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/hook/{rest:.*}", self.handle)
        return app

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    def ids(self) -> list[str]:
        return [r.delivery_id for r in self.received]

    def bodies_for(self, delivery_id: str) -> list[bytes]:
        return [r.body for r in self.received if r.delivery_id == delivery_id]


async def start_receiver(aiohttp_server: Any, **kwargs: Any) -> Receiver:
    receiver = Receiver()
    receiver.server = await aiohttp_server(receiver.app(), **kwargs)
    return receiver
