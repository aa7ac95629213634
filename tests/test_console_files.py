"""The console's page and files as a browser gets them: the page's headers, and files that are
revalidated on every use, so a tab never mixes files of two versions after an upgrade."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.service.static_routes import CONTENT_SECURITY_POLICY, setup_static_routes


async def console_client(aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    app = web.Application()
    setup_static_routes(app)
    return await aiohttp_client(app)


async def test_the_page_is_never_kept_and_runs_only_its_own_scripts(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await console_client(aiohttp_client)
    resp = await client.get("/runs")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_console_file_is_revalidated_and_unchanged_answers_304(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await console_client(aiohttp_client)
    resp = await client.get("/static/console/app.js")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-cache"
    body = await resp.read()
    assert b"import" in body
    again = await client.get("/static/console/app.js", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    assert again.headers["Cache-Control"] == "no-cache"
    assert await again.read() == b""
    changed = await client.get("/static/console/app.js", headers={"If-None-Match": '"another-version"'})
    assert changed.status == 200
    assert await changed.read() == body


async def test_the_icon_keeps_its_own_caching(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await console_client(aiohttp_client)
    resp = await client.get("/favicon.ico")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "max-age=86400"
