"""``GET /api/me``: the caller's identity and roles, for every kind of credential, checked
against the OpenAPI document; never the credential itself."""

from __future__ import annotations

import time

import jwt
import psycopg2

from server.app import create_app
from server.keys import REGISTRY
from server.security.api_keys import create_key
from server.service.openapi_document import build_openapi
from tests.support.openapi_contract import Contract
from tests.support.settings import replace_settings

SECRET = "a-shared-secret-of-at-least-32-bytes!!"
SETTINGS_KEY = "settings-trigger-key-0123456789"


def contract_for(client) -> Contract:  # type: ignore[no-untyped-def]
    return Contract(build_openapi(client.app[REGISTRY]))


async def test_open_mode_says_so_and_grants_admin(client):
    contract = contract_for(client)
    body = await contract.call(client, "GET", "/api/me", 200)
    assert body == {
        "actor": "open mode",
        "via": "open",
        "open_mode": True,
        "role": "admin",
        "roles": ["read", "trigger", "admin"],
        "api_key": None,
        "subject": None,
    }


async def test_each_credential_is_named_and_never_echoed(aiohttp_client, settings, database_url):
    conn = psycopg2.connect(database_url)
    try:
        stored, record = create_key(conn, "deploy-bot", "trigger")
    finally:
        conn.close()
    secured = replace_settings(settings, api_keys=(("read", SETTINGS_KEY),), jwt_secret=SECRET)
    client = await aiohttp_client(create_app(secured))
    contract = contract_for(client)

    body = await contract.call(client, "GET", "/api/me", 200, headers={"X-API-Key": stored})
    assert body == {
        "actor": "deploy-bot",
        "via": "api_key",
        "open_mode": False,
        "role": "trigger",
        "roles": ["read", "trigger"],
        "api_key": {"id": record.key_id, "name": "deploy-bot"},
        "subject": None,
    }

    body = await contract.call(client, "GET", "/api/me", 200, headers={"X-API-Key": SETTINGS_KEY})
    assert body["role"] == "read" and body["api_key"]["name"] is None
    assert body["api_key"]["id"].startswith("settings-") and body["actor"] == f"key {body['api_key']['id']}"

    token = jwt.encode({"sub": "alice@example.com", "role": "admin", "exp": int(time.time()) + 300}, SECRET)
    body = await contract.call(client, "GET", "/api/me", 200, headers={"Authorization": f"Bearer {token}"})
    assert body == {
        "actor": "jwt alice@example.com",
        "via": "jwt",
        "open_mode": False,
        "role": "admin",
        "roles": ["read", "trigger", "admin"],
        "api_key": None,
        "subject": "alice@example.com",
    }

    resp = await client.get("/api/me")
    assert resp.status == 401
    answers = [
        await (await client.get("/api/me", headers=headers)).text()
        for headers in ({"X-API-Key": stored}, {"X-API-Key": SETTINGS_KEY}, {"Authorization": f"Bearer {token}"})
    ]
    for credential in (stored, SETTINGS_KEY, token, SECRET):
        assert not any(credential in text for text in answers)
