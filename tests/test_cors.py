"""CORS on every route (walking the router), and WebSocket handshakes from foreign pages refused."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from server.api.roles import requires
from server.app import create_app
from server.settings import DEFAULT_CORS_ORIGINS
from tests.support.route_paths import concrete_path
from tests.support.settings import replace_settings

ALLOWED = "http://localhost:3000"
FOREIGN = "https://evil.example"
KEY = "cors-test-admin-key-0123456789"


@pytest.fixture
def secured_settings(settings):
    return replace_settings(settings, api_keys=(("admin", KEY),))


def preflight_headers(origin: str, method: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "X-API-Key, Content-Type, If-None-Match",
    }


async def test_every_route_answers_preflights_without_credentials(aiohttp_client, secured_settings):
    client = await aiohttp_client(create_app(secured_settings))
    routes = [r for r in client.app.router.routes() if r.method not in ("HEAD", "OPTIONS")]
    assert len(routes) >= 12
    problems = []
    for route in routes:
        path = concrete_path(route)
        resp = await client.options(path, headers=preflight_headers(ALLOWED, route.method))
        headers = resp.headers
        if resp.status != 200 or headers.get("Access-Control-Allow-Origin") != ALLOWED:
            problems.append(f"{route.method} {path}: {resp.status} {dict(headers)}")
            continue
        assert headers["Access-Control-Allow-Credentials"] == "true"
        assert headers["Access-Control-Max-Age"] == "86400"
        assert route.method in headers["Access-Control-Allow-Methods"]
        assert {"X-API-KEY", "CONTENT-TYPE", "IF-NONE-MATCH"} <= {
            h.strip().upper() for h in headers["Access-Control-Allow-Headers"].split(",")
        }
        refused = await client.options(path, headers=preflight_headers(FOREIGN, route.method))
        if refused.status != 403 or "Access-Control-Allow-Origin" in refused.headers:
            problems.append(f"{route.method} {path} from {FOREIGN}: {refused.status} {dict(refused.headers)}")
    assert not problems, "\n".join(problems)


async def test_preflight_for_a_method_outside_the_list_is_refused(client):
    resp = await client.options("/api/collectors/history", headers=preflight_headers(ALLOWED, "TRACE"))
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error.startswith("CORS preflight refused:") and "'TRACE' is not allowed" in error, error
    assert "allowed methods: GET, POST" in error


async def test_a_refused_preflight_says_the_origin_is_not_allowed_and_which_setting_allows_it(client):
    """It used to say only "Forbidden"."""
    resp = await client.options("/api/collectors", headers=preflight_headers(FOREIGN, "GET"))
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert f"origin {FOREIGN!r} is not allowed" in error, error
    assert "COLLECTOR_HUB_CORS_ORIGINS" in error and ALLOWED in error


async def test_responses_to_an_allowed_origin_carry_cors_headers_even_when_refused(aiohttp_client, secured_settings):
    client = await aiohttp_client(create_app(secured_settings))
    ok = await client.get("/api/collectors/runs/latest", headers={"Origin": ALLOWED, "X-API-Key": KEY})
    assert ok.status == 200
    assert ok.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = ok.headers["Access-Control-Expose-Headers"].upper()
    assert "ETAG" in exposed and "RATELIMIT-REMAINING" in exposed and "X-REQUEST-ID" in exposed
    # A browser can read why it was refused.
    refused = await client.get("/api/collectors/runs/latest", headers={"Origin": ALLOWED})
    assert refused.status == 401 and refused.headers["Access-Control-Allow-Origin"] == ALLOWED
    foreign = await client.get("/api/collectors/runs/latest", headers={"Origin": FOREIGN, "X-API-Key": KEY})
    assert "Access-Control-Allow-Origin" not in foreign.headers


async def test_origins_come_from_settings(aiohttp_client, settings):
    assert ALLOWED in DEFAULT_CORS_ORIGINS
    client = await aiohttp_client(create_app(replace_settings(settings, cors_origins=("https://dash.example",))))
    resp = await client.options("/api/collectors", headers=preflight_headers("https://dash.example", "GET"))
    assert resp.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    assert (await client.options("/api/collectors", headers=preflight_headers(ALLOWED, "GET"))).status == 403


@requires("read")
async def echo_ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("hello")
    await ws.close()
    return ws


@pytest.fixture
async def ws_client(aiohttp_client, secured_settings):
    app = create_app(secured_settings)
    app.router.add_get("/api/test/ws", echo_ws)
    return await aiohttp_client(app)


async def test_websocket_from_a_foreign_origin_is_refused(ws_client):
    paths = ["/api/test/ws"] + [
        r.resource.canonical for r in ws_client.app.router.routes() if r.resource and r.resource.canonical == "/api/ws"
    ]
    for path in paths:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await ws_client.ws_connect(path, headers={"Origin": FOREIGN, "X-API-Key": KEY})
        assert refused.value.status == 403, path


async def test_websocket_from_allowed_same_or_no_origin_connects(ws_client):
    own = f"http://{ws_client.host}:{ws_client.port}"
    for headers in ({"Origin": ALLOWED}, {"Origin": own}, {}):
        async with ws_client.ws_connect("/api/test/ws", headers={**headers, "X-API-Key": KEY}) as ws:
            assert (await ws.receive_str()) == "hello"
    # The Origin check comes first, and authentication still applies after it.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await ws_client.ws_connect("/api/test/ws", headers={"Origin": ALLOWED})
    assert refused.value.status == 401


async def test_options_that_is_not_a_preflight_is_405_with_allow(client):
    """OPTIONS exists only for CORS preflights (the fuzz test sent a bare OPTIONS and got 403)."""
    resp = await client.options("/api/collectors/run")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert "only answers CORS preflights" in (await resp.json())["error"]
    resp = await client.options("/api/collectors/run", headers={"Origin": ALLOWED})  # no requested method
    assert resp.status == 405
