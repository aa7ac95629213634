"""Helpers for the live-push tests: reading raw SSE off a real socket, arranging rows."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse


class SseStream:
    """Parses ``text/event-stream`` bytes as they arrive (blocks separated by a blank line)."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.comments: list[str] = []
        self.retry: int | None = None

    def close(self) -> None:
        """Give the connection back now: a stream left open is an unclosed-connection
        ResourceWarning whenever the garbage collector meets it, in some later test."""
        self.resp.close()

    async def block(self, wait: float = 15.0) -> list[str] | None:
        """The next block's lines; None at end of stream."""
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.resp.content.readline(), wait)
            if raw == b"":
                return lines or None
            line = raw.decode("utf-8").rstrip("\n")
            if line == "":
                if lines:
                    return lines
                continue
            lines.append(line)

    async def event(self, wait: float = 15.0) -> Any:
        """The next event as {"id", "event", "data" (raw str)}, or None once the stream has ended;
        comments and retry are noted."""
        while True:
            lines = await self.block(wait)
            if lines is None:
                return None
            fields: dict[str, Any] = {}
            for line in lines:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value
            if "data" in fields:
                return fields

    async def events_until(self, status: str, wait: float = 20.0) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while True:
            event = await self.event(wait)
            assert event is not None, f"stream ended before status {status}: {seen}"
            seen.append(event)
            if json.loads(event["data"])["status"] == status:
                return seen
