"""server/compat.py: each use of a library beyond its public API still does what the server relies
on, on the installed releases; a failure names them (``compat.untested``). And nothing else in
``server/`` or ``collectors/`` reaches for a private name of another library."""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import re
from pathlib import Path

import aiohttp
import aiohttp_cors
import pytest
from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from server import compat

ROOT = Path(__file__).resolve().parent.parent
OWN_PACKAGES = ("server", "collectors")


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@pytest.mark.parametrize("name", sorted(compat.CHECKED_ON))
def test_the_installed_release_is_one_the_compat_items_were_checked_on(name):
    installed = importlib.metadata.version(name)
    assert major_minor(installed) == compat.CHECKED_ON[name], (
        f"{name} {installed} is not a release server/compat.py was checked on ({compat.CHECKED_ON[name]}.x): "
        "run tests/test_compat.py on it, then update CHECKED_ON there and the pin in setup.py"
    )


@pytest.mark.parametrize("name", sorted(compat.CHECKED_ON))
def test_setup_py_pins_each_library_to_the_release_checked_on(name):
    checked = compat.CHECKED_ON[name]
    major, minor = checked.split(".")
    pin = f'"{name}>={checked},<{major}.{int(minor) + 1}"'
    assert pin in (ROOT / "setup.py").read_text(), f"setup.py must require {pin} (server/compat.py, CHECKED_ON)"


async def test_aiohttp_cors_serves_preflights_with_its_preflight_handler(aiohttp_client):
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    route = app.router.add_get("/hello", hello)
    cors = aiohttp_cors.setup(app, defaults={"https://dashboard.example": aiohttp_cors.ResourceOptions()})  # type: ignore[no-untyped-call]
    cors.add(route)
    preflight_routes = [r for r in app.router.routes() if r.method == "OPTIONS"]
    assert preflight_routes, compat.untested("aiohttp-cors adding an OPTIONS route for a resource")
    for preflight in preflight_routes:
        handler = getattr(preflight.handler, "__func__", None)
        assert handler is compat.CORS_PREFLIGHT_HANDLER, compat.untested("aiohttp-cors's preflight handler")
    client = await aiohttp_client(app)
    resp = await client.options(
        "/hello", headers={"Origin": "https://dashboard.example", "Access-Control-Request-Method": "GET"}
    )
    assert resp.status == 200, compat.untested("aiohttp-cors's preflight handler answering a preflight")
    assert resp.headers["Access-Control-Allow-Origin"] == "https://dashboard.example"


class Recording(compat.AddressCheckingConnector):
    def __init__(self, refuse_connected: bool = False) -> None:
        super().__init__(limit=1, resolver=aiohttp.ThreadedResolver())
        self.refuse_connected = refuse_connected
        self.resolved: list[tuple[str, list[str]]] = []
        self.connected: list[str | None] = []

    def check_resolved(self, host: str, addresses: list[str]) -> None:
        self.resolved.append((host, addresses))

    def check_connected(self, address: str | None) -> None:
        self.connected.append(address)
        if self.refuse_connected:
            raise OSError(f"refused {address}")


async def test_the_address_checks_see_what_is_resolved_and_what_is_connected_to(aiohttp_server):
    received: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/hook", hook)
    server = await aiohttp_server(app, host="127.0.0.1")
    message = compat.untested("TCPConnector's _resolve_host/_wrap_create_connection (the address checks)")

    connector = Recording()
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://localhost:{server.port}/hook") as resp:
            assert resp.status == 200
    assert [host for host, _ in connector.resolved] == ["localhost"], message
    assert "127.0.0.1" in connector.resolved[0][1], message
    assert connector.connected == ["127.0.0.1"], message
    assert received == ["/hook"]

    refusing = Recording(refuse_connected=True)
    async with aiohttp.ClientSession(connector=refusing) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get(f"http://127.0.0.1:{server.port}/hook")
    assert refusing.connected == ["127.0.0.1"], message
    assert isinstance(caught.value.__cause__, OSError) and "refused 127.0.0.1" in str(caught.value.__cause__), message
    assert received == ["/hook"], message  # nothing was sent on the refused connection


HANDLER_RETURNED = web.RequestKey("handler_returned", bool)


@web.middleware
async def mark_returned(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    request[HANDLER_RETURNED] = True  # the handler and every middleware inside this one are done
    return response


async def test_a_stream_is_served_after_its_handler_returned(aiohttp_client):
    seen: list[bool] = []

    class Served(compat.StreamServedAfterItsHandler):
        __slots__ = ("request",)
        request: web.Request

        async def serve(self) -> None:
            seen.append(self.request.get(HANDLER_RETURNED, False))
            await self.write(b"served after the handler\n")
            await self.finish()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = Served()
        response.request = request
        await response.prepare(request)
        await response.write(b"started\n")
        return response

    app = web.Application(middlewares=[mark_returned])
    app.router.add_get("/stream", handler)
    client = await aiohttp_client(app)
    message = compat.untested("aiohttp awaiting write_eof of a returned stream after its handler")
    try:
        resp = await client.get("/stream")
        body = await asyncio.wait_for(resp.read(), 15)
    except TimeoutError:
        pytest.fail(message)
    assert body == b"started\nserved after the handler\n", message
    assert seen == [True], message


async def test_a_websocket_is_served_after_its_handler_returned(aiohttp_client):
    seen: list[bool] = []

    class Served(compat.WebSocketServedAfterItsHandler):
        __slots__ = ("request",)
        request: web.Request

        async def serve(self) -> None:
            seen.append(self.request.get(HANDLER_RETURNED, False))
            async for msg in self:
                await self.send_str(f"served: {msg.data}")
                break
            await self.close()
            await self.finish()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = Served()
        ws.request = request
        await ws.prepare(request)
        return ws

    app = web.Application(middlewares=[mark_returned])
    app.router.add_get("/ws", handler)
    client = await aiohttp_client(app)
    message = compat.untested("aiohttp awaiting write_eof of a returned WebSocket after its handler")
    ws = await client.ws_connect("/ws")
    await ws.send_str("hello")
    try:
        reply = await ws.receive(timeout=15)
        closing = await ws.receive(timeout=15)
    except TimeoutError:
        pytest.fail(message)
    assert (reply.type, reply.data) == (WSMsgType.TEXT, "served: hello"), message
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), message
    assert seen == [True], message


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_names_used(source: str) -> list[str]:
    """Private names a module uses but does not define itself: attributes it never assigns, in
    no ``__slots__`` and of no function or class of its own (``self._req`` of a library's base
    class included), any private method of a base class (``super()._resolve_host``, overridden
    or not), ``getattr`` with such a name, and private names imported from other packages.
    ``os._exit`` is public despite its name."""
    tree = ast.parse(source)
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            defined.update(
                c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            of_base = isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "super"
            if (of_base or node.attr not in defined) and ast.unparse(node) != "os._exit":
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and _private(name.value):
                if name.value not in defined:
                    found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            if module.split(".")[0] not in OWN_PACKAGES and (
                any(_private(part) for part in module.split(".")) or any(_private(a.name) for a in node.names)
            ):
                found.append(f"line {node.lineno}: from {module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] not in OWN_PACKAGES and any(_private(part) for part in parts):
                    found.append(f"line {node.lineno}: import {alias.name}")
    return found


def test_the_private_name_check_finds_what_it_must():
    old_fast_path = (
        "import asyncio.selector_events\n"
        "T = getattr(asyncio.selector_events, '_SelectorSocketTransport', None)\n"
        "def f(transport): return transport._sock\n"
    )
    assert len(private_names_used(old_fast_path)) == 2
    old_stream = "class S(StreamResponse):\n    def abort(self):\n        self._req.transport.abort()\n"
    assert private_names_used(old_stream) == ["line 3: self._req"]
    assert private_names_used("from aiohttp_cors.preflight_handler import _PreflightHandler\n")
    assert private_names_used("import asyncio.selector_events as s\ns._x\n")
    old_guard = (
        "class G(TCPConnector):\n    async def _resolve_host(self):\n        return await super()._resolve_host()\n"
    )
    assert private_names_used(old_guard) == ["line 3: super()._resolve_host"]
    own = "class A:\n    __slots__ = ('_n',)\n    def f(self):\n        self._m = 1\n        return self._n, self._m\n"
    assert private_names_used(own) == []


def test_nothing_outside_compat_uses_a_private_name_of_another_library():
    found = {}
    for package in OWN_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "server" / "compat.py":
                continue
            names = private_names_used(path.read_text())
            if names:
                found[str(path.relative_to(ROOT))] = names
    assert not found, f"private names outside server/compat.py (move them there, with a test): {found}"


def test_compat_names_the_versions_in_its_failure_messages():
    message = compat.untested("an item")
    for name in compat.CHECKED_ON:
        assert re.search(rf"{name} {re.escape(importlib.metadata.version(name))}\b", message)
        assert f"{name} {compat.CHECKED_ON[name]}.x" in message
