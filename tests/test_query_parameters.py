"""Unknown query parameters get a 400 that lists the accepted ones, on every route (routes other
modules add later are covered by walking the router)."""

from __future__ import annotations

import asyncio

from server.api.validation import accepted_query
from server.app import create_app
from tests.support.route_paths import concrete_path
from tests.support.settings import replace_settings

UNKNOWN = "zz_not_a_parameter"


async def test_every_route_refuses_an_unknown_query_parameter(client):
    routes = [r for r in client.app.router.routes() if r.method not in ("HEAD", "OPTIONS")]
    assert len(routes) >= 20
    failures = []
    for route in routes:
        path = concrete_path(route)
        async with asyncio.timeout(10):
            resp = await client.request(route.method, f"{path}?{UNKNOWN}=1&limit=5")
            body = await resp.json() if resp.content_type == "application/json" else {}
            resp.close()
        accepted = accepted_query(route.handler)
        message = body.get("error", "")
        if resp.status != 400 or UNKNOWN not in message or ("limit" in accepted) == ("'limit'" in message):
            failures.append(f"{route.method} {path}: {resp.status} {message!r}")
        for name in accepted:
            if name not in message:
                failures.append(f"{route.method} {path}: the message does not list {name!r}: {message!r}")
    assert failures == []


async def test_the_message_lists_what_the_route_accepts(client):
    resp = await client.get("/api/collectors/history?colectors=demo")
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert "'colectors'" in error
    assert "accepts: batch_id, collectors, cursor, limit, since, status, until" in error
    resp = await client.get("/api/collectors?x=1")
    assert "accepts: none" in (await resp.json())["error"]
    resp = await client.get("/api/collectors/runs/job/zz_00000000/events?nope=1")
    assert "access_token" in (await resp.json())["error"]


async def test_a_caller_without_credentials_gets_401_first(aiohttp_client, settings):
    secured = await aiohttp_client(
        create_app(replace_settings(settings, api_keys=(("read", "a-read-key-0123456789abcdef"),)))
    )
    resp = await secured.get(f"/api/collectors/history?{UNKNOWN}=1")
    assert resp.status == 401
    resp = await secured.get(
        f"/api/collectors/history?{UNKNOWN}=1", headers={"X-API-Key": "a-read-key-0123456789abcdef"}
    )
    assert resp.status == 400


async def test_a_cors_preflight_with_a_query_is_answered(client):
    resp = await client.options(
        "/api/collectors/history?limit=5",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
    )
    assert resp.status == 200
