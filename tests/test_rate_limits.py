"""Rate limits: per client, honest headers, shared by processes through a real Redis, and the
server still answering when Redis goes away."""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis

from server.app import create_app
from server.observability.metrics import sample_value
from server.security.rate_limit_counters import REDIS_KEY_PREFIX
from tests.support.conditions import early_in_a_rate_window, eventually
from tests.support.openapi_contract import Contract
from tests.support.processes import RedisServer, serving
from tests.support.settings import replace_settings

LIMITED = "/api/collectors/runs/latest"
SECRET = "rate-limit-test-secret-at-least-32-bytes"
KEYS = {"one": "rate-limit-key-one-0123456789", "two": "rate-limit-key-two-0123456789"}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A Redis for the module: COLLECTOR_HUB_REDIS_URL, or a redis-server started here."""
    external = os.environ.get("COLLECTOR_HUB_REDIS_URL")
    if external:
        yield external
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def limit_headers(resp: aiohttp.ClientResponse) -> tuple[int, int, int]:
    h = resp.headers
    return int(h["RateLimit-Limit"]), int(h["RateLimit-Remaining"]), int(h["RateLimit-Reset"])


async def test_a_client_over_its_limit_gets_429_with_honest_headers(aiohttp_client, settings):
    client = await aiohttp_client(create_app(replace_settings(settings, rate_limit_per_minute=5)))
    await early_in_a_rate_window()
    before = sample_value("collector_hub_rate_limited_requests_total")
    seen = []
    for path in (LIMITED, "/api/collectors/history", LIMITED, "/api/collectors/runs/job/zz_00000000", LIMITED):
        resp = await client.get(path)
        assert resp.status in (200, 404)
        seen.append(limit_headers(resp))
    assert [remaining for _, remaining, _ in seen] == [4, 3, 2, 1, 0]
    assert all(limit == 5 and 1 <= reset <= 60 for limit, _, reset in seen)
    refused = await client.get(LIMITED)
    assert refused.status == 429
    body = await refused.json()
    assert body["error"].startswith("Rate limit exceeded: 5 requests per minute")
    limit, remaining, reset = limit_headers(refused)
    assert (limit, remaining) == (5, 0) and int(refused.headers["Retry-After"]) == reset
    assert sample_value("collector_hub_rate_limited_requests_total") == before + 1
    # Other routes, and the writes under runs/ (collectors reporting), are not counted.
    other = await client.get("/api/collectors")
    assert other.status == 200 and "RateLimit-Limit" not in other.headers
    created = await (await client.post("/api/collectors/run", json={"collectors": ["demo"]})).json()
    job_id = created["collectors"][0]["job_id"]
    progress = await client.post(f"/api/collectors/runs/job/{job_id}/progress", json={"status": "running"})
    assert progress.status == 200


async def test_clients_are_keys_then_token_subjects_then_addresses(aiohttp_client, settings):
    configured = replace_settings(
        settings,
        rate_limit_per_minute=2,
        api_keys=tuple(("read", key) for key in KEYS.values()),
        jwt_secret=SECRET,
    )
    client = await aiohttp_client(create_app(configured))
    await early_in_a_rate_window()
    for _ in range(2):
        assert (await client.get(LIMITED, headers={"X-API-Key": KEYS["one"]})).status == 200
    assert (await client.get(LIMITED, headers={"X-API-Key": KEYS["one"]})).status == 429
    assert (await client.get(LIMITED, headers={"X-API-Key": KEYS["two"]})).status == 200

    def bearer(sub: str) -> dict[str, str]:
        claims = {"sub": sub, "role": "read", "exp": int(time.time()) + 60}
        return {"Authorization": "Bearer " + jwt.encode(claims, SECRET)}

    for _ in range(2):
        assert (await client.get(LIMITED, headers=bearer("alice"))).status == 200
    assert (await client.get(LIMITED, headers=bearer("alice"))).status == 429  # a fresh token, the same subject
    assert (await client.get(LIMITED, headers=bearer("bob"))).status == 200


async def test_addresses_come_from_x_forwarded_for_only_behind_a_trusted_proxy(aiohttp_client, settings):
    trusting = replace_settings(settings, rate_limit_per_minute=1, trusted_proxies=(ipaddress.ip_network("127.0.0.1"),))
    client = await aiohttp_client(create_app(trusting))
    await early_in_a_rate_window()
    # The peer (127.0.0.1) is the proxy; the client is the first untrusted hop from the right.
    assert (await client.get(LIMITED, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})).status == 200
    assert (await client.get(LIMITED, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})).status == 429
    assert (await client.get(LIMITED, headers={"X-Forwarded-For": "198.51.100.2"})).status == 200
    untrusting = await aiohttp_client(create_app(replace_settings(settings, rate_limit_per_minute=1)))
    assert (await untrusting.get(LIMITED, headers={"X-Forwarded-For": "198.51.100.3"})).status == 200
    # Without a trusted proxy the header is ignored: a new forged address is still the same client.
    assert (await untrusting.get(LIMITED, headers={"X-Forwarded-For": "198.51.100.4"})).status == 429


async def seconds_left_in_window(url: str) -> int:
    r = aioredis.from_url(url)
    try:
        now = int((await r.time())[0])
    finally:
        await r.aclose()
    return 60 - now % 60


async def test_two_server_processes_share_the_limit_through_redis(redis_url, database_url, tmp_path: Path):
    # Both processes count one client's requests in one window; start well inside a window so
    # the test cannot straddle a minute boundary.
    async def early_in_window() -> bool:
        return await seconds_left_in_window(redis_url) > 20

    await eventually(early_in_window, timeout=45, interval=0.5, what="a fresh rate-limit window")
    env = {
        "COLLECTOR_HUB_DATABASE_URL": database_url,
        "COLLECTOR_HUB_REDIS_URL": redis_url,
        "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "10",
        "COLLECTOR_HUB_RUN_COLLECTORS": "0",
        "COLLECTOR_HUB_API_KEYS": f"read:{KEYS['one']}",
        "COLLECTOR_HUB_DATA_DIR": str(tmp_path),
    }
    async with (
        serving(env, tmp_path / "a.log") as first,
        serving(env, tmp_path / "b.log") as second,
        aiohttp.ClientSession(headers={"X-API-Key": KEYS["one"]}) as session,
    ):
        statuses, remaining = [], []
        for i in range(12):
            server = (first, second)[i % 2]
            async with session.get(server.url + LIMITED) as resp:
                statuses.append(resp.status)
                remaining.append(limit_headers(resp)[1])
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) >= 1
        assert statuses == [200] * 10 + [429, 429]
        assert remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0]
        # Another client, through either process, has its own count.
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(second.url + LIMITED) as resp:
                assert resp.status == 401


async def test_the_server_keeps_answering_while_redis_is_down(aiohttp_client, settings, tmp_path: Path, caplog):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    try:
        configured = replace_settings(settings, rate_limit_per_minute=1000, redis_url=redis_server.url)
        client = await aiohttp_client(create_app(configured))
        probe = aioredis.from_url(redis_server.url)
        assert (await client.get(LIMITED)).status == 200
        keys = [k async for k in probe.scan_iter(REDIS_KEY_PREFIX + "*")]
        assert len(keys) == 1 and int(await probe.get(keys[0])) == 1  # type: ignore[arg-type]
        await probe.aclose()
        assert (await (await client.get("/readyz")).json())["redis"] == "ok"

        redis_server.stop()
        caplog.set_level(logging.WARNING, logger="server.security.rate_limit_counters")
        errors_before = sample_value("collector_hub_rate_limit_backend_errors_total")
        for _ in range(5):
            resp = await client.get(LIMITED)
            assert resp.status == 200 and "RateLimit-Remaining" in resp.headers
        assert sample_value("collector_hub_rate_limit_backend_errors_total") > errors_before
        warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(warnings) == 1, "logged once per interval, not once per request"
        ready = await client.get("/readyz")
        assert ready.status == 200 and (await ready.json())["redis"] == "unreachable"

        redis_server.start()  # same port: the limiter goes back to Redis by itself
        probe = aioredis.from_url(redis_server.url)

        async def counted_in_redis() -> bool:
            await client.get(LIMITED)
            return bool([k async for k in probe.scan_iter(REDIS_KEY_PREFIX + "*")])

        await eventually(counted_in_redis, timeout=15, what="counts to reach Redis again")
        await probe.aclose()
    finally:
        redis_server.stop()


async def test_the_429_matches_the_openapi_document(aiohttp_client, settings):

    client = await aiohttp_client(create_app(replace_settings(settings, rate_limit_per_minute=1)))
    await early_in_a_rate_window()
    contract = Contract(await (await client.get("/api/openapi.json")).json())
    await contract.call(client, "GET", "/api/collectors/history", 200)
    await contract.call(client, "GET", "/api/collectors/history", 429)
    await contract.call(client, "GET", "/api/collectors/runs/batch/{batch_id}", 429, path={"batch_id": "bc_00000000"})
