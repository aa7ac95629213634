"""Everything the server takes from a library beyond its public API, in one place (STYLE: public
APIs on the hot path; docs/ARCHITECTURE.md, "Beyond public APIs").

Each item says what it relies on and was checked on the versions in ``CHECKED_ON`` (setup.py
pins aiohttp and aiohttp-cors to those major.minor releases). ``tests/test_compat.py`` has a
test for each that fails, naming the installed version, when a release stops doing what the
item relies on: nothing here may break silently. Nothing else in ``server/`` or ``collectors/``
touches a private name of asyncio, aiohttp or aiohttp-cors (the same test module checks).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import aiohttp
from aiohttp import web

# The releases every item below was checked on, as major.minor: the one copy, which setup.py's
# pins must match (tests/test_compat.py).
CHECKED_ON = {"aiohttp": "3.14", "aiohttp-cors": "0.8"}


def untested(item: str) -> str:
    """The failure message of a compatibility test: what broke, on which installed versions,
    and which were checked."""
    installed = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in CHECKED_ON)
    checked = ", ".join(f"{name} {version}.x" for name, version in CHECKED_ON.items())
    return f"server/compat.py: {item} no longer holds on {installed} (checked on {checked})"


# ---- aiohttp-cors: its preflight handler ----
#
# aiohttp-cors answers preflights with a method of a private class that it installs as the
# OPTIONS handler of every resource. The server marks that function public (preflights carry no
# credentials) and recognises the routes it serves. Checked by
# test_compat.py::test_aiohttp_cors_serves_preflights_with_its_preflight_handler.
try:
    from aiohttp_cors.preflight_handler import _PreflightHandler
except ImportError as exc:  # pragma: no cover - only on an untested aiohttp-cors
    raise ImportError(untested("aiohttp_cors.preflight_handler._PreflightHandler")) from exc

CORS_PREFLIGHT_HANDLER: Any = _PreflightHandler._preflight_handler


# ---- aiohttp's TCPConnector: the addresses it resolves and connects to ----


class AddressCheckingConnector(aiohttp.TCPConnector):
    """A TCP connector through which a subclass can refuse addresses: ``check_resolved`` sees
    every address a host name resolves to, before any connection is made, and
    ``check_connected`` the peer address of each new connection, before a byte is written.
    Either refuses by raising an ``OSError``, which the request raises as
    ``aiohttp.ClientConnectorError`` (its ``__cause__`` the error raised).

    aiohttp has no public hook for either: this overrides two of TCPConnector's internals
    (``_resolve_host``, ``_wrap_create_connection`` and its ``req`` keyword). Checked by
    test_compat.py::test_the_address_checks_see_what_is_resolved_and_what_is_connected_to."""

    def check_resolved(self, host: str, addresses: list[str]) -> None:
        """Raise to refuse ``host``, which resolved to ``addresses``."""

    def check_connected(self, address: str | None) -> None:
        """Raise to refuse a connection made to ``address`` (None: the peer is unknown)."""

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> Any:
        results = await super()._resolve_host(host, port, traces=traces)
        self.check_resolved(host, [str(result["host"]) for result in results])
        return results

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await super()._wrap_create_connection(*args, **kwargs)
        peer = transport.get_extra_info("peername")
        try:
            self.check_connected(str(peer[0]) if peer else None)
        except OSError as exc:
            transport.close()
            raise aiohttp.ClientConnectorError(kwargs["req"].connection_key, exc) from exc
        return transport, protocol


# ---- aiohttp's request handler: a response served after its handler has returned ----
#
# aiohttp awaits ``write_eof()`` of the response a handler returns, in the connection's own task,
# once the handler has returned (``RequestHandler.finish_response``). A live stream is served
# from there (docs/LIVE_PUSH.md, memory per connection): an idle stream then holds no frame of
# its handler or of the middleware chain. Public methods, but the order in which aiohttp calls
# them is its own. Checked by test_compat.py::test_a_stream_is_served_after_its_handler_returned
# and ::test_a_websocket_is_served_after_its_handler_returned.


class StreamServedAfterItsHandler(web.StreamResponse):
    """A streamed response whose ``serve`` runs once its handler has returned it and it has
    started; ``serve`` ends the response with ``finish``."""

    __slots__ = ("_unserved",)

    def __init__(self, **kwargs: Any) -> None:
        self._unserved = True
        super().__init__(**kwargs)

    async def serve(self) -> None:
        raise NotImplementedError

    async def finish(self) -> None:
        """aiohttp's own end of the response."""
        await web.StreamResponse.write_eof(self)

    async def write_eof(self, data: bytes = b"") -> None:
        if self._unserved:
            self._unserved = False
            await self.serve()
        else:  # aiohttp asks once; a later call only ends the response
            await web.StreamResponse.write_eof(self, data)


class WebSocketServedAfterItsHandler(web.WebSocketResponse):
    """A WebSocket whose ``serve`` runs once its handler has returned it, upgraded; ``serve``
    ends the connection with ``finish``."""

    __slots__ = ("_unserved",)

    def __init__(self, **kwargs: Any) -> None:
        self._unserved = True
        super().__init__(**kwargs)

    async def serve(self) -> None:
        raise NotImplementedError

    async def finish(self) -> None:
        """aiohttp's own end of the connection."""
        await web.WebSocketResponse.write_eof(self)

    async def write_eof(self) -> None:  # type: ignore[override]
        if self._unserved:
            self._unserved = False
            await self.serve()
        else:
            await web.WebSocketResponse.write_eof(self)
