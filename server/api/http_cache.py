"""Conditional GET: does the client's ``If-None-Match`` name the current version?"""

from __future__ import annotations

from aiohttp import web


def not_modified(request: web.Request, etag: str) -> bool:
    """True when ``If-None-Match`` lists ``etag`` (weak tags match too) or is ``*``."""
    header = request.headers.get("If-None-Match", "")
    if header.strip() == "*":
        return True
    return etag in {part.strip().removeprefix("W/") for part in header.split(",")}
