"""Events and the state they come from, each encoded once per process (docs/ARCHITECTURE.md, rule 5).

An :class:`Event` holds the exact bytes of the matching GET body; the SSE frame and the
WebSocket message around them are built at most once, on first use, and then the same
``bytes`` object goes to every subscriber.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from collectors.contract import TERMINAL_STATUSES


def http_chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk (RFC 9112 7.1): how a streamed response's bytes go on
    the wire when they are written straight to its socket."""
    return b"%x\r\n%s\r\n" % (len(data), data)


# ``Event.ws_frame``'s message: its start up to the seq, by kind, then the seq, this, the body, and "}".
_WS_PREFIXES = {kind: b'{"type": "%s", "seq": ' % kind.encode() for kind in ("batch", "job")}
_WS_DATA = b', "data": '
_WS_DATA_SIZE = len(_WS_DATA)


@dataclasses.dataclass(init=False, eq=False, slots=True)
class Event:
    """One state of one object: ``kind`` is ``batch`` or ``job``. ``encoded`` is its body's
    JSON, as PostgreSQL built it (server/runs/body_sql.py)."""

    kind: str
    object_id: str
    seq: int
    encoded: bytes
    status: str
    collector: str | None
    _sse: bytes | None
    _ws: bytes | None
    # ``sse_chunk()`` and ``ws_frame()``, once built: the wire bytes of every SSE stream and
    # every WebSocket without compression.
    _sse_wire: bytes | None
    _ws_wire: bytes | None
    # Worked out once, read once per subscriber by the fanout:
    terminal: bool
    _key: str | None  # ``key``, once asked for

    def __init__(
        self, kind: str, object_id: str, seq: int, encoded: bytes, status: str, collector: str | None = None
    ) -> None:
        # Written out rather than generated with a __post_init__: one call per event, and
        # every re-read makes one per job and one for its batch (docs/LIVE_PUSH.md, the fixed
        # cost per state).
        self.kind = kind
        self.object_id = object_id
        self.seq = seq
        self.encoded = encoded
        self.status = status
        self.collector = collector
        self._sse = self._ws = self._sse_wire = self._ws_wire = self._key = None
        self.terminal = status in TERMINAL_STATUSES

    @property
    def key(self) -> str:
        """The object (``batch:<id>``, ``job:<id>``): conflation and resume memory key by it.
        Made when first asked for: only an outbox that queues the event, or a follower of
        collectors, asks (not the fast path of a state's fanout)."""
        key = self._key
        if key is None:
            key = self._key = f"{self.kind}:{self.object_id}"
        return key

    @property
    def data(self) -> bytes:
        """The body's JSON: exactly what the object's GET returns."""
        return self.encoded

    def sse_frame(self) -> bytes:
        if self._sse is None:
            self._sse = b"id: %d\nevent: %s\ndata: %s\n\n" % (self.seq, self.kind.encode(), self.encoded)
        return self._sse

    def ws_message(self) -> bytes:
        """The WebSocket message: ``ws_frame`` without its header (one copy of the layout)."""
        if self._ws is None:
            frame = self.ws_frame()
            length = frame[1]  # unmasked: the payload length, or 126 / 127 for a longer field
            self._ws = frame[2 if length < 126 else 4 if length == 126 else 10 :]
        return self._ws

    def sse_chunk(self) -> bytes:
        """The SSE frame as one HTTP/1.1 chunk: what goes on the wire of every SSE stream."""
        if self._sse_wire is None:
            self._sse_wire = http_chunk(self.sse_frame())
        return self._sse_wire

    def ws_frame(self) -> bytes:
        """The WebSocket message as one unmasked, uncompressed text frame (RFC 6455 5.2):
        what goes on the wire of every WebSocket without compression, and the one copy of the
        message's layout (``ws_message`` is this without its header). Put together in one
        join, with no call and no copy on the way (the fast path of every state's fanout makes
        it: docs/LIVE_PUSH.md, the fixed cost per state)."""
        if self._ws_wire is None:
            kind = self.kind
            prefix = _WS_PREFIXES.get(kind) or b'{"type": "%s", "seq": ' % kind.encode()
            seq = b"%d" % self.seq
            encoded = self.encoded
            size = len(prefix) + len(seq) + _WS_DATA_SIZE + len(encoded) + 1  # the closing "}"
            if size < 126:
                header = bytes((0x81, size))
            elif size < 1 << 16:
                header = (0x817E0000 | size).to_bytes(4, "big")  # 0x81, 126, then 16 bits
            else:
                header = ((0x817F << 64) | size).to_bytes(10, "big")  # 0x81, 127, then 64 bits
            self._ws_wire = b"".join((header, prefix, seq, _WS_DATA, encoded, b"}"))
        return self._ws_wire


@dataclasses.dataclass(eq=False, slots=True)
class Control:
    """A message for one WebSocket client (acknowledgement, error, pong): never conflated."""

    data: bytes

    @classmethod
    def of(cls, message: dict[str, Any]) -> Control:
        return cls(json.dumps(message).encode("utf-8"))


@dataclasses.dataclass(eq=False, slots=True)
class BatchSnapshot:
    """A batch and all its jobs, read in one transaction: the batch's GET body and every job's
    GET body, encoded."""

    batch_id: str
    seq: int
    batch: Event
    jobs: dict[str, Event]

    @property
    def terminal(self) -> bool:
        return self.batch.terminal
