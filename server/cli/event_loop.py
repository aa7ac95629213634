"""``serve --loop``: the event loop the server runs on (docs/DEPLOYMENT.md, event loops).

``asyncio`` is Python's own loop; ``uvloop`` (an optional extra: ``pip install
'collector-hub[uvloop]'``) is a drop-in loop on libuv that many aiohttp deployments run; ``auto``
is uvloop's when it is installed, else asyncio's. The server takes the same paths on both
(docs/LIVE_PUSH.md, event loops), and each ``--workers`` process makes its own loop after the
fork.
"""

from __future__ import annotations

import asyncio

try:
    import uvloop
except ImportError:  # the optional extra is not installed
    uvloop = None  # type: ignore[assignment]


class EventLoopUnavailable(Exception):
    """The loop asked for cannot be had here."""


def resolve_event_loop(name: str) -> str:
    """The loop a ``loop`` setting (one of settings.EVENT_LOOPS) stands for: asyncio or uvloop."""
    if name == "auto":
        return "asyncio" if uvloop is None else "uvloop"
    if name == "uvloop" and uvloop is None:
        raise EventLoopUnavailable(
            "--loop uvloop (COLLECTOR_HUB_LOOP): uvloop is not installed; install it with "
            "pip install 'collector-hub[uvloop]', or choose --loop asyncio"
        )
    return name


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new loop of the kind ``resolve_event_loop`` returned."""
    if name == "uvloop":
        assert uvloop is not None  # resolve_event_loop said it was there
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
