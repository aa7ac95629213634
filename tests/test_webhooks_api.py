"""The admin API for webhook receivers: secrets shown once, bad input refused with nothing
stored, settings-declared receivers, and every answer as the OpenAPI document says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.app import create_app
from server.settings import SettingsError, load_settings
from server.webhooks.rules import address_guard
from server.webhooks.rules.signing import is_valid_secret, new_secret
from tests.support.openapi_contract import Contract
from tests.support.settings import replace_settings

HOOKS = "/api/webhooks"
HOOK = "/api/webhooks/{webhook_id}"
ROTATE = "/api/webhooks/{webhook_id}/rotate-secret"
DELIVERIES = "/api/webhooks/{webhook_id}/deliveries"
REDELIVER = "/api/webhooks/deliveries/{delivery_id}/redeliver"
GOOD = {"url": "https://hooks.example.com/collector-hub", "events": ["batch.completed", "batch.failed"]}


@pytest.fixture
async def doc(client) -> dict[str, Any]:
    return await (await client.get("/api/openapi.json")).json()


@pytest.fixture
def contract(doc) -> Contract:
    return Contract(doc)


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """There is no DNS here; names resolve to a documentation (public-looking) address unless
    a test says otherwise."""

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    monkeypatch.setattr(address_guard, "resolve_addresses", resolve)


def webhook_count(db) -> int:  # type: ignore[no-untyped-def]
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM webhooks")
        return int(cur.fetchone()[0])


async def test_create_shows_the_secret_once_and_never_again(client, contract, db):
    created = await contract.call(client, "POST", HOOKS, 201, json={**GOOD, "description": "CI"})
    assert is_valid_secret(created["secret"])
    assert created["events"] == ["batch.completed", "batch.failed"] and created["enabled"] is True
    assert created["source"] == "api" and created["description"] == "CI"
    path = {"webhook_id": created["id"]}
    shown = await contract.call(client, "GET", HOOK, 200, path=path)
    listed = await contract.call(client, "GET", HOOKS, 200)
    assert "secret" not in shown and created["secret"] not in json.dumps(listed)
    assert shown == {k: v for k, v in created.items() if k != "secret"}
    assert [w["id"] for w in listed["webhooks"]].count(created["id"]) == 1
    deliveries = await contract.call(client, "GET", DELIVERIES, 200, path=path, params={"limit": "5"})
    assert deliveries == {"deliveries": []}


async def test_two_secrets_are_different_and_well_formed():
    first, second = new_secret(), new_secret()
    assert first != second and is_valid_secret(first) and is_valid_secret(second)


async def test_patch_rotate_and_delete(client, contract):
    created = await contract.call(client, "POST", HOOKS, 201, json=GOOD)
    path = {"webhook_id": created["id"]}
    changed = await contract.call(
        client, "PATCH", HOOK, 200, path=path, json={"events": ["batch.cancelled"], "description": None}
    )
    assert changed["events"] == ["batch.cancelled"]
    disabled = await contract.call(client, "PATCH", HOOK, 200, path=path, json={"enabled": False})
    assert disabled["enabled"] is False and disabled["disabled_reason"] == "disabled by request"
    assert disabled["disabled_at"] is not None
    enabled = await contract.call(client, "PATCH", HOOK, 200, path=path, json={"enabled": True})
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    moved = await contract.call(client, "PATCH", HOOK, 200, path=path, json={"url": "https://other.example.com/h"})
    assert moved["url"] == "https://other.example.com/h"

    rotated = await contract.call(client, "POST", ROTATE, 200, path=path)
    assert is_valid_secret(rotated["secret"]) and rotated["secret"] != created["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    await contract.call(client, "POST", ROTATE, 400, path=path, json={"secret": "mine"})

    await contract.call(client, "DELETE", HOOK, 204, path=path)
    for method, template in (("GET", HOOK), ("PATCH", HOOK), ("DELETE", HOOK), ("POST", ROTATE), ("GET", DELIVERIES)):
        kwargs = {"json": {"enabled": True}} if method == "PATCH" else {}
        await contract.call(client, method, template, 404, path=path, **kwargs)
    for method, template in (("GET", HOOK), ("PATCH", HOOK), ("DELETE", HOOK), ("POST", ROTATE), ("GET", DELIVERIES)):
        kwargs = {"json": {"enabled": True}} if method == "PATCH" else {}
        await contract.call(client, method, template, 400, path={"webhook_id": "wh_x"}, **kwargs)
    await contract.call(client, "POST", REDELIVER, 404, path={"delivery_id": "msg_" + "0" * 32})
    await contract.call(client, "POST", REDELIVER, 400, path={"delivery_id": "msg_1"})


BAD_REGISTRATIONS = [
    ({"url": "not a url", "events": ["batch.completed"]}, "url"),
    ({"url": "hooks.example.com/x", "events": ["batch.completed"]}, "absolute"),
    ({"url": "ftp://hooks.example.com/x", "events": ["batch.completed"]}, "absolute http(s)"),
    ({"url": "http://hooks.example.com/x", "events": ["batch.completed"]}, "https"),
    ({"url": "https://user:pw@hooks.example.com/x", "events": ["batch.completed"]}, "credentials"),
    ({"url": "https://hooks.example.com:99999/x", "events": ["batch.completed"]}, "url"),
    ({"url": "https://hooks.example.com/" + "a" * 2100, "events": ["batch.completed"]}, "2048"),
    ({"url": 5, "events": ["batch.completed"]}, "url must be"),
    ({"url": "https://127.0.0.1/x", "events": ["batch.completed"]}, "non-public"),
    # Every refusal the setting would lift names it, not only the http one.
    ({"url": "https://127.0.0.1/x", "events": ["batch.completed"]}, "COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE=1"),
    ({"url": "https://localhost/x", "events": ["batch.completed"]}, "COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE=1"),
    ({"url": "http://hooks.example.com/x", "events": ["batch.completed"]}, "COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE=1"),
    ({"url": "http://", "events": ["batch.completed"]}, "absolute http(s) URL"),
    ({"url": "https://10.1.2.3/x", "events": ["batch.completed"]}, "non-public"),
    ({"url": "https://169.254.169.254/latest/meta-data", "events": ["batch.completed"]}, "non-public"),
    ({"url": "https://[::1]/x", "events": ["batch.completed"]}, "non-public"),
    ({"url": "https://[::ffff:127.0.0.1]/x", "events": ["batch.completed"]}, "non-public"),
    ({"url": "https://[fe80::1]/x", "events": ["batch.completed"]}, "non-public"),
    ({"url": "https://224.0.0.1/x", "events": ["batch.completed"]}, "non-public"),
    ({"url": "https://0.0.0.0/x", "events": ["batch.completed"]}, "non-public"),
    ({"url": "https://2130706433/x", "events": ["batch.completed"]}, "url"),
    ({"url": "https://localhost/x", "events": ["batch.completed"]}, "not a public DNS name"),
    ({"url": "https://printer.local/x", "events": ["batch.completed"]}, "not a public DNS name"),
    ({"url": "https://intranet/x", "events": ["batch.completed"]}, "not a public DNS name"),
    ({"url": GOOD["url"], "events": ["batch.started"]}, "Unknown event"),
    ({"url": GOOD["url"], "events": []}, "events"),
    ({"url": GOOD["url"], "events": "batch.failed"}, "events"),
    ({"url": GOOD["url"], "events": ["batch.failed", "batch.failed"]}, "more than once"),
    ({"url": GOOD["url"], "events": [1]}, "strings"),
    ({"description": "no url"}, "required"),
    ({"events": ["batch.failed"]}, "required"),
    ({**GOOD, "description": "d" * 501}, "at most 500"),
    ({**GOOD, "description": "nul\u0000"}, "NUL"),
    ({**GOOD, "description": 7}, "description"),
    ({**GOOD, "secret": new_secret()}, "Unknown field"),
    ({**GOOD, "enabled": False}, "Unknown field"),
]


@pytest.mark.parametrize(("body", "complaint"), BAD_REGISTRATIONS, ids=[str(i) for i in range(len(BAD_REGISTRATIONS))])
async def test_bad_registration_is_refused_and_nothing_is_stored(client, contract, db, body, complaint):
    before = webhook_count(db)
    answer = await contract.call(client, "POST", HOOKS, 400, json=body)
    assert complaint in answer["error"]
    assert webhook_count(db) == before
    # The document cannot know which hosts are private, but it knows the shape the server takes.
    url = body.get("url")
    if url in (None, GOOD["url"]) or (isinstance(url, str) and not url.startswith("https://")):
        assert not contract.request_schema_accepts(HOOKS, body), "the OpenAPI request schema accepts it"


async def test_a_name_resolving_to_a_private_address_is_refused(client, contract, db, monkeypatch):
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "192.168.1.20"]  # one private answer is enough to refuse

    monkeypatch.setattr(address_guard, "resolve_addresses", resolve)
    before = webhook_count(db)
    answer = await contract.call(client, "POST", HOOKS, 400, json=GOOD)
    assert "resolves to a non-public address (192.168.1.20)" in answer["error"]
    assert webhook_count(db) == before


async def test_malformed_bodies_are_refused(client, contract, db):
    before = webhook_count(db)
    await contract.call(client, "POST", HOOKS, 400, data=b"{nope", headers={"Content-Type": "application/json"})
    await contract.call(client, "POST", HOOKS, 400, json=["https://hooks.example.com"])
    await contract.call(client, "POST", HOOKS, 415, data=b"<x/>", headers={"Content-Type": "application/xml"})
    big = {**GOOD, "description": "x" * 70_000}  # over the default 64 KiB body limit
    await contract.call(client, "POST", HOOKS, 413, json=big)
    assert webhook_count(db) == before


async def test_bad_patches_change_nothing(client, contract):
    created = await contract.call(client, "POST", HOOKS, 201, json=GOOD)
    path = {"webhook_id": created["id"]}
    for body in (
        {},
        {"enabled": "yes"},
        {"events": ["nope"]},
        {"url": "http://hooks.example.com/x"},
        {"url": "https://10.0.0.1/x"},
        {"secret": "whsec_x"},
        {"description": "d" * 501},
    ):
        await contract.call(client, "PATCH", HOOK, 400, path=path, json=body)
    await contract.call(client, "PATCH", HOOK, 415, path=path, data=b"a=1", headers={"Content-Type": "text/html"})
    assert await contract.call(client, "GET", HOOK, 200, path=path) == {
        k: v for k, v in created.items() if k != "secret"
    }


async def test_allow_private_permits_http_and_loopback(aiohttp_client, settings, contract):
    client = await aiohttp_client(create_app(replace_settings(settings, webhook_allow_private=True)))
    created = await contract.call(client, "POST", HOOKS, 201, json={**GOOD, "url": "http://127.0.0.1:9/x"})
    assert created["url"] == "http://127.0.0.1:9/x"
    answer = await contract.call(client, "POST", HOOKS, 400, json={**GOOD, "url": "file:///etc/passwd"})
    assert "http(s)" in answer["error"]


async def test_declared_webhooks_are_upserted_at_start_and_read_only(aiohttp_client, settings, contract, db):
    secret = new_secret()
    url = "https://declared.example.com/hook"
    env = {"COLLECTOR_HUB_WEBHOOKS": json.dumps([{"url": url, "events": ["batch.failed"], "secret": secret}])}
    declared = load_settings(env).webhooks
    assert secret not in repr(load_settings(env))
    for _ in range(2):  # a second start (or a second node) updates, never duplicates
        client = await aiohttp_client(create_app(replace_settings(settings, webhooks=declared)))
    listed = (await contract.call(client, "GET", HOOKS, 200))["webhooks"]
    mine = [w for w in listed if w["url"] == url]
    assert len(mine) == 1 and mine[0]["source"] == "settings" and mine[0]["events"] == ["batch.failed"]
    path = {"webhook_id": mine[0]["id"]}
    for method, template, kwargs in (
        ("PATCH", HOOK, {"json": {"url": "https://elsewhere.example.com/"}}),
        ("DELETE", HOOK, {}),
        ("POST", ROTATE, {}),
    ):
        answer = await contract.call(client, method, template, 409, path=path, **kwargs)
        assert "COLLECTOR_HUB_WEBHOOKS" in answer["error"]
    await contract.call(client, "PATCH", HOOK, 200, path=path, json={"enabled": False})
    with db.cursor() as cur:
        cur.execute("SELECT secret FROM webhooks WHERE url = %s", (url,))
        assert cur.fetchone()[0] == secret

    # Removed from the setting: gone at the next start.
    client = await aiohttp_client(create_app(replace_settings(settings, webhooks=())))
    listed = (await contract.call(client, "GET", HOOKS, 200))["webhooks"]
    assert url not in [w["url"] for w in listed]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COLLECTOR_HUB_WEBHOOKS": "{"}, "COLLECTOR_HUB_WEBHOOKS must be a JSON list"),
        ({"COLLECTOR_HUB_WEBHOOKS": '[{"url": "https://a.example.com", "events": ["batch.failed"]}]'}, "secret"),
        (
            {
                "COLLECTOR_HUB_WEBHOOKS": json.dumps(
                    [{"url": "http://a.example.com", "events": ["batch.failed"], "secret": "whsec_" + "A" * 43 + "="}]
                )
            },
            "COLLECTOR_HUB_WEBHOOKS[0]: url must use https",
        ),
        ({"COLLECTOR_HUB_WEBHOOK_RETRY_SCHEDULE": "5,soon"}, "COLLECTOR_HUB_WEBHOOK_RETRY_SCHEDULE must be"),
        ({"COLLECTOR_HUB_WEBHOOK_RETRY_SCHEDULE": "-1"}, "between 0 and"),
        ({"COLLECTOR_HUB_WEBHOOK_TIMEOUT": "0"}, "COLLECTOR_HUB_WEBHOOK_TIMEOUT must be between"),
        ({"COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE": "perhaps"}, "COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE must be one of"),
    ],
)
def test_bad_webhook_settings_are_named(env, message):
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert message in str(caught.value)
    assert "A" * 43 not in str(caught.value)  # never echo a secret back


def test_webhook_settings_parse():
    settings = load_settings(
        {"COLLECTOR_HUB_WEBHOOK_RETRY_SCHEDULE": "1, 2.5,3", "COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE": "1"}
    )
    assert settings.webhook_retry_schedule == (1.0, 2.5, 3.0) and settings.webhook_allow_private
    assert load_settings({}).webhook_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
