"""Authentication and roles: a matrix over every route in the router (routes other modules add
later are covered by walking the router) and every kind of credential."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server.api.roles import role_of_route, role_satisfies
from server.app import create_app
from server.security.api_keys import create_key, revoke_key
from tests.support.openapi_contract import Contract
from tests.support.route_paths import SAMPLE_PARAMETERS, concrete_path, path_parameters
from tests.support.settings import replace_settings

SECRET = "a-shared-secret-of-at-least-32-bytes!!"
SETTINGS_KEYS = {"read": "settings-read-key-0123456789", "admin": "settings-admin-key-0123456789"}
REQUEST_TIMEOUT = 10


def token(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode({"exp": int(time.time()) + 300, **claims}, key, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(header: dict[str, Any], claims: dict[str, Any], signing_key: bytes | None) -> str:
    """A token PyJWT would refuse to make (alg none, a public key used as an HMAC secret)."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = b"" if signing_key is None else hmac.new(signing_key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


@pytest.fixture(scope="module")
def stored_keys(database_url: str) -> dict[str, str]:
    """One database key per role, plus a revoked one."""
    import psycopg2

    conn = psycopg2.connect(database_url)
    try:
        keys = {role: create_key(conn, f"matrix-{role}", role)[0] for role in ("read", "trigger", "admin")}
        keys["revoked"] = create_key(conn, "matrix-revoked", "admin")[0]
        revoke_key(conn, "matrix-revoked")
    finally:
        conn.close()
    return keys


@pytest.fixture
def secured_settings(settings, stored_keys):
    return replace_settings(
        settings, api_keys=tuple((role, key) for role, key in SETTINGS_KEYS.items()), jwt_secret=SECRET
    )


@pytest.fixture
async def secured(aiohttp_client, secured_settings) -> TestClient:
    return await aiohttp_client(create_app(secured_settings))


def credential_cases(stored_keys: dict[str, str]) -> Iterator[tuple[str, dict[str, str], str | None]]:
    """(case, headers, granted role); None means the credentials must be refused with 401."""
    now = int(time.time())
    yield "missing", {}, None
    yield "wrong key", {"X-API-Key": "chk_0123456789ab_" + "A" * 43}, None
    yield "garbage key", {"X-API-Key": "nope"}, None
    yield "revoked key", {"X-API-Key": stored_keys["revoked"]}, None
    yield "expired token", {"Authorization": "Bearer " + token({"role": "admin", "exp": now - 3600})}, None
    yield "not yet valid token", {"Authorization": "Bearer " + token({"role": "admin", "nbf": now + 3600})}, None
    yield "token without exp", {"Authorization": "Bearer " + jwt.encode({"role": "admin"}, SECRET)}, None
    forged = token({"role": "admin"}, key="another-secret-of-at-least-32-bytes-long")
    yield "forged token", {"Authorization": "Bearer " + forged}, None
    none_token = hand_made_token({"alg": "none", "typ": "JWT"}, {"role": "admin", "exp": now + 300}, None)
    yield "alg none", {"Authorization": "Bearer " + none_token}, None
    hs512 = token({"role": "admin"}, key=SECRET + "-and-more-bytes-for-hs512-to-be-happy-xxxxx", algorithm="HS512")
    yield "unexpected algorithm", {"Authorization": "Bearer " + hs512}, None
    yield "not bearer", {"Authorization": "Basic " + b64(b"admin:admin")}, None
    for role in ("read", "trigger", "admin"):
        yield f"stored {role} key", {"X-API-Key": stored_keys[role]}, role
        yield f"{role} token", {"Authorization": "Bearer " + token({"sub": f"user-{role}", "role": role})}, role
    yield "settings read key", {"X-API-Key": SETTINGS_KEYS["read"]}, "read"
    yield "settings admin key", {"X-API-Key": SETTINGS_KEYS["admin"]}, "admin"
    yield "scope token", {"Authorization": "Bearer " + token({"scope": "openid trigger read"})}, "trigger"
    yield "token with no role", {"Authorization": "Bearer " + token({"sub": "nobody"})}, "none"


async def status_of(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    """Only the status matters: streams are closed as soon as their headers arrive."""
    async with asyncio.timeout(REQUEST_TIMEOUT):
        resp = await client.request(method, path, headers=headers)
        status = resp.status
        resp.close()
        return status


async def test_every_route_by_every_credential(secured, stored_keys):
    routes = [r for r in secured.app.router.routes() if r.method not in ("HEAD", "OPTIONS")]
    assert len(routes) >= 12
    failures = []
    cases = list(credential_cases(stored_keys))  # the tokens are made once; they live 300 s
    for route in routes:
        needed = role_of_route(route)
        assert needed is not None, f"{route.method} {route.resource}: no role"
        path = concrete_path(route)
        for case, headers, granted in cases:
            status = await status_of(secured, route.method, path, headers)
            if needed == "public":
                expected_ok = True
            elif granted is None:
                expected_ok = status == 401
            elif granted == "none" or not role_satisfies(granted, needed):
                expected_ok = status == 403
            else:
                expected_ok = status not in (401, 403)
            if needed == "public" and status in (401, 403):
                expected_ok = False
            if not expected_ok:
                failures.append(f"{route.method} {path} ({needed}) with {case}: {status}")
    assert not failures, "\n".join(failures)


async def test_refusals_say_why_in_the_error_shape(secured, stored_keys):
    from server.observability.metrics import sample_value

    failures = "collector_hub_auth_failures_total"
    missing_before = sample_value(failures, {"reason": "missing"})
    resp = await secured.get("/api/collectors/history")
    assert resp.status == 401
    assert sample_value(failures, {"reason": "missing"}) == missing_before + 1
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "X-API-Key" in (await resp.json())["error"]
    resp = await secured.get("/api/collectors/history", headers={"X-API-Key": stored_keys["revoked"]})
    assert (resp.status, await resp.json()) == (401, {"error": "API key revoked"})
    expired = token({"role": "read", "exp": int(time.time()) - 3600})
    resp = await secured.get("/api/collectors/history", headers={"Authorization": f"Bearer {expired}"})
    assert (await resp.json())["error"] == "invalid bearer token: token expired"

    async def total_runs() -> int:
        history = await secured.get("/api/collectors/history", headers={"X-API-Key": stored_keys["read"]})
        return int((await history.json())["total_runs"])

    # Earlier tests of the module share its database and may have started runs: count around it.
    before = await total_runs()
    resp = await secured.post(
        "/api/collectors/run", json={"collectors": ["demo"]}, headers={"X-API-Key": stored_keys["read"]}
    )
    assert resp.status == 403
    assert (await resp.json())["error"] == "This needs the trigger role; these credentials grant read"
    assert await total_runs() == before  # nothing was created by the refused trigger


async def test_a_route_without_a_declared_role_is_refused_to_everyone(aiohttp_client, secured_settings, stored_keys):
    async def undeclared(request: web.Request) -> web.Response:
        return web.json_response({"leaked": True})

    app = create_app(secured_settings)
    app.router.add_get("/api/undeclared", undeclared)
    client = await aiohttp_client(app)
    resp = await client.get("/api/undeclared", headers={"X-API-Key": stored_keys["admin"]})
    assert resp.status == 403 and "leaked" not in await resp.text()


async def test_streams_take_the_credential_from_the_query_or_a_cookie_and_nothing_else_does(
    aiohttp_client, secured_settings, stored_keys
):
    # The real SSE route (issue 3): an unknown batch is 404 once the credential is accepted.
    client = await aiohttp_client(create_app(secured_settings))
    stream = "/api/collectors/runs/batch/bc_00000000/events"
    read_key, read_token = stored_keys["read"], token({"role": "read", "sub": "browser"})
    assert (await client.get(stream)).status == 401
    assert (await client.get(stream, params={"access_token": read_key})).status == 404
    assert (await client.get(stream, params={"access_token": read_token})).status == 404
    assert (await client.get(stream, params={"access_token": "wrong"})).status == 401
    assert (await client.get(stream, headers={"Cookie": f"access_token={read_token}"})).status == 404
    # Not a stream: the URL and cookies are ignored.
    assert (await client.get("/api/collectors/history", params={"access_token": read_key})).status == 401
    assert (await client.get("/api/collectors/history", headers={"Cookie": f"access_token={read_key}"})).status == 401


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
async def test_public_key_tokens_and_the_key_confusion_attack(aiohttp_client, settings, tmp_path: Path, kind):
    private = rsa.generate_private_key(65537, 2048) if kind == "RS256" else ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "jwt.pem"
    key_file.write_bytes(public_pem)
    configured = replace_settings(
        settings, jwt_public_key_file=key_file, jwt_issuer="https://issuer.example", jwt_audience="collector-hub"
    )
    client = await aiohttp_client(create_app(configured))
    claims = {"role": "read", "iss": "https://issuer.example", "aud": "collector-hub", "sub": "svc"}

    async def status(bearer: str) -> int:
        return (await client.get("/api/collectors", headers={"Authorization": f"Bearer {bearer}"})).status

    assert await status(token(claims, private, kind)) == 200
    assert await status(token({**claims, "iss": "https://evil.example"}, private, kind)) == 401
    assert await status(token({**claims, "aud": "someone-else"}, private, kind)) == 401
    assert await status(token({k: v for k, v in claims.items() if k != "aud"}, private, kind)) == 401
    other = rsa.generate_private_key(65537, 2048) if kind == "RS256" else ec.generate_private_key(ec.SECP256R1())
    assert await status(token(claims, other, kind)) == 401
    # HS256 "signed" with the public key as the secret: refused, the public key verifies only its own algorithm.
    confused = hand_made_token({"alg": "HS256", "typ": "JWT"}, {**claims, "exp": int(time.time()) + 300}, public_pem)
    assert await status(confused) == 401


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args], capture_output=True, text=True, timeout=60, check=False
    )


async def test_keys_commands_create_list_and_revoke(aiohttp_client, secured_settings, database_url):
    client = await aiohttp_client(create_app(secured_settings))
    created = run_cli("keys", "create", "--role", "read", "--name", "dashboard", "--database-url", database_url)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("chk_") and key not in created.stderr and "shown only this once" in created.stderr
    assert (await client.get("/api/collectors", headers={"X-API-Key": key})).status == 200
    listed = run_cli("keys", "list", "--database-url", database_url)
    assert listed.returncode == 0 and "dashboard" in listed.stdout and key not in listed.stdout
    key_id = key.split("_")[1]
    assert key_id in listed.stdout
    again = run_cli("keys", "create", "--role", "read", "--name", "dashboard", "--database-url", database_url)
    assert again.returncode == 2 and "already exists" in again.stderr
    revoked = run_cli("keys", "revoke", "dashboard", "--database-url", database_url)
    assert revoked.returncode == 0, revoked.stderr
    resp = await client.get("/api/collectors", headers={"X-API-Key": key})
    assert (resp.status, await resp.json()) == (401, {"error": "API key revoked"})
    missing = run_cli("keys", "revoke", "dashboard", "--database-url", database_url)
    assert missing.returncode == 2 and "no live key" in missing.stderr
    bad_role = run_cli("keys", "create", "--role", "root", "--name", "x", "--database-url", database_url)
    assert bad_role.returncode == 2


async def test_keys_create_says_how_to_send_the_key_and_that_works(aiohttp_server, secured_settings, database_url):
    """From the first key on, every request without one is refused: `keys create` says how to
    send it (the CLI's variable, curl's header), and the commands it prints work as printed."""
    server = await aiohttp_server(create_app(secured_settings))
    url = str(server.make_url("")).rstrip("/")
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server", "keys", "create", "--role", "read", "--name", "how-to"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLLECTOR_HUB_URL": url, "COLLECTOR_HUB_DATABASE_URL": database_url},
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("chk_") and key not in created.stderr  # the key is on stdout only
    hints = dict(line.strip().split(":  ", 1) for line in created.stderr.splitlines() if ":  " in line)
    assert hints["collector-hub commands"].strip() == "export COLLECTOR_HUB_API_KEY=<the key>"
    curl = hints["curl"].strip()
    assert curl == f'curl -H "X-API-Key: $COLLECTOR_HUB_API_KEY" {url}/api/collectors'

    async def shell(command: list[str], **env: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **env}
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    _, answer = await shell(["sh", "-c", curl + " -s"], COLLECTOR_HUB_API_KEY=key)
    assert "demo" in [collector["name"] for collector in json.loads(answer)["collectors"]], answer
    _, refused = await shell(["sh", "-c", curl + " -s"], COLLECTOR_HUB_API_KEY="")
    assert set(json.loads(refused)) == {"error"}, refused
    code, out = await shell(
        [sys.executable, "-m", "server", "schedules", "list", "--url", url], COLLECTOR_HUB_API_KEY=key
    )
    assert code == 0, out
    code, out = await shell(
        [sys.executable, "-m", "server", "schedules", "list", "--url", url], COLLECTOR_HUB_API_KEY=""
    )
    assert code != 0 and "401" in out


def test_settings_keep_secrets_out_of_repr(secured_settings):
    shown = repr(secured_settings)
    assert SECRET not in shown and SETTINGS_KEYS["admin"] not in shown


async def test_the_openapi_document_says_which_operations_need_credentials(secured, stored_keys):
    from server.security.cors import is_preflight_route

    doc = await (await secured.get("/api/openapi.json")).json()
    contract = Contract(doc)
    mismatched = []
    for route in secured.app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or is_preflight_route(route) or isinstance(resource, web.StaticResource):
            continue
        assert resource is not None
        template = resource.canonical
        operation = doc["paths"][template][route.method.lower()]
        public = role_of_route(route) == "public"
        if public == ("401" in operation["responses"]) or public == ("security" in operation):
            mismatched.append(f"{route.method} {template}: role {role_of_route(route)}")
            continue
        if public:
            continue
        params = {name: SAMPLE_PARAMETERS.get(name, "x") for name in path_parameters(template)}
        await contract.call(secured, route.method, template, 401, path=params)
        if role_of_route(route) != "read":
            await contract.call(
                secured, route.method, template, 403, path=params, headers={"X-API-Key": stored_keys["read"]}
            )
    assert not mismatched, (
        "server/service/openapi_security.py PUBLIC_OPERATIONS disagrees with the declared roles: "
        + ", ".join(mismatched)
    )
