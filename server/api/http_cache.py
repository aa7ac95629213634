"""Conditional GET on seq-versioned objects: one ETag format (``"<tag>-<seq>"``), one
``If-None-Match`` check, for the REST reads, the cached polls and the docs."""

from __future__ import annotations

import re

from aiohttp import web

_CACHE_HEADERS = {"Cache-Control": "no-cache"}


def not_modified(request: web.Request, etag: str) -> bool:
    """True when ``If-None-Match`` lists ``etag`` (weak tags match too) or is ``*``."""
    header = request.headers.get("If-None-Match", "")
    if header.strip() == "*":
        return True
    return etag in {part.strip().removeprefix("W/") for part in header.split(",")}


def seq_etag(tag: str, seq: int) -> str:
    """The ETag of an object of kind ``tag`` (``b`` batch, ``j`` job, ``l`` latest) at ``seq``."""
    return f'"{tag}-{seq}"'


def client_seq(request: web.Request, tag: str) -> int | None:
    """The newest seq the client's ``If-None-Match`` names for this kind of object, if any."""
    found = re.findall(rf'"{tag}-([0-9]{{1,18}})"', request.headers.get("If-None-Match", ""))
    return max(map(int, found)) if found else None


def versioned_response(request: web.Request, tag: str, seq: int, body: bytes) -> web.Response:
    """``body`` (JSON) with its ETag, or an empty 304 when the client already holds this seq."""
    headers = {"ETag": seq_etag(tag, seq), **_CACHE_HEADERS}
    if not_modified(request, headers["ETag"]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", charset="utf-8", headers=headers)
