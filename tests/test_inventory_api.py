"""The inventory read API over rows written the way the collectors write them."""

from __future__ import annotations

import pytest

from server.app import create_app
from tests.support.conditions import early_in_a_rate_window
from tests.support.inventory import all_devices
from tests.support.openapi_contract import NOT_PROVOKED, Contract
from tests.support.runs import get_json
from tests.support.settings import replace_settings


async def test_the_writer_counts_and_the_job_says_what_changed(client, db, filled) -> None:  # type: ignore[no-untyped-def]
    assert (filled["counts"].seen, filled["counts"].new, filled["counts"].gone) == (11, 0, 1)
    with db.cursor() as cur:
        cur.execute("SELECT status, message FROM job_runs WHERE job_id = 'ni_00000002'")
        assert cur.fetchone() == ("completed", "Collected 11 devices (0 new, 1 gone)")


async def test_list_filters_and_cursor_paging(client, filled) -> None:  # type: ignore[no-untyped-def]
    present = await all_devices(client)
    assert len(present) == 11 + 11
    assert [(d["source"], d["id"]) for d in present] == sorted((d["source"], d["id"]) for d in present)
    page = await get_json(client, "/api/inventory/devices?source=ninja&limit=4")
    assert [d["id"] for d in page["devices"]] == ["1", "10", "11", "2"] and page["next_cursor"]
    rest = await get_json(client, f"/api/inventory/devices?source=ninja&limit=500&cursor={page['next_cursor']}")
    assert len(rest["devices"]) == 7 and rest["next_cursor"] is None
    assert [d["id"] for d in (await get_json(client, "/api/inventory/devices?removed=true"))["devices"]] == ["12"]
    assert len((await get_json(client, "/api/inventory/devices?removed=any&source=ninja"))["devices"]) == 12
    hits = (await get_json(client, "/api/inventory/devices?q=ws-00&source=ninja"))["devices"]
    assert sorted(d["host_name"] for d in hits) == [f"WS-{n:03d}" for n in range(1, 10)]
    assert (await get_json(client, "/api/inventory/devices?q=100%25"))["devices"] == []  # % is literal
    linux = (await get_json(client, "/api/inventory/devices?platform=linux&source=ninja"))["devices"]
    assert {d["platform"] for d in linux} == {"linux"} and len(linux) == 5
    future = "2999-01-01T00:00:00Z"
    assert (await get_json(client, f"/api/inventory/devices?seen_since={future}"))["devices"] == []
    missing = (await get_json(client, "/api/inventory/devices?source=ninja&missing_from=threatlocker"))["devices"]
    assert sorted(d["host_name"] for d in missing) == ["WS-001", "WS-002", "WS-003", "WS-004"]


async def test_one_device_with_its_raw_record(client, filled) -> None:  # type: ignore[no-untyped-def]
    device = await get_json(client, "/api/inventory/devices/ninja/3")
    assert device["raw"] == {"id": 3, "note": "raw \u00e9"}
    assert device["last_contact_at"] == "2026-11-29T10:00:00.000000Z"
    assert device["last_seen_job_id"] == "ni_00000002" and device["removed_at"] is None
    assert (await get_json(client, "/api/inventory/devices/ninja/999", 404)) == {"error": "Device not found"}


async def test_summary(client, filled) -> None:  # type: ignore[no-untyped-def]
    summary = await get_json(client, "/api/inventory/summary")
    ninja, threatlocker = summary["sources"]
    assert ninja["source"] == "ninja" and ninja["devices"] == 11 and ninja["removed"] == 1
    assert ninja["last_successful_run"]["job_id"] == "ni_00000002"
    assert ninja["last_successful_run"]["batch_id"] == "bc_00000002"
    assert ninja["last_successful_run"]["devices_gone"] == 1
    assert threatlocker["devices"] == 11
    gaps = {(c["source"], c["missing_from"]): c for c in summary["coverage"]}
    assert gaps[("ninja", "threatlocker")] == {
        "source": "ninja", "missing_from": "threatlocker", "devices": 4,
        "sample": ["WS-001", "WS-002", "WS-003", "WS-004"],
    }  # fmt: skip
    assert gaps[("threatlocker", "ninja")]["devices"] == 4  # WS-012 is removed from ninja: it counts


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("source=crowdstrike", "source must be one of ninja, threatlocker"),
        ("platform=beos", "platform must be one of windows"),
        ("removed=maybe", "removed must be false"),
        ("limit=0", "limit must be between 1 and 500"),
        ("limit=501", "limit must be between 1 and 500"),
        ("seen_since=yesterday", "seen_since must be an ISO 8601 timestamp"),
        ("seen_since=2026-11-29T10:00:00", "seen_since must be an ISO 8601 timestamp with a time zone"),
        ("cursor=bm90IGEgY3Vyc29y", "cursor is not one this server gave out"),
        ("cursor=%%%", "cursor is not one this server gave out"),
        ("q=", "q must not be empty"),
        ("q=" + "x" * 201, "q must be at most 200 characters"),
        ("q=a%00b", "q must not contain NUL characters"),
        ("source=ninja&missing_from=ninja", "missing_from must name a different source"),
        ("colour=blue", "Unknown query parameter(s): 'colour'"),
    ],
)
async def test_bad_queries_get_a_clear_400(client, query: str, error: str) -> None:  # type: ignore[no-untyped-def]
    body = await get_json(client, f"/api/inventory/devices?{query}", 400)
    assert error in body["error"], body


async def test_bad_device_paths_get_a_clear_400(client) -> None:  # type: ignore[no-untyped-def]
    assert "Unknown inventory source" in (await get_json(client, "/api/inventory/devices/nope/1", 400))["error"]
    assert "Malformed device id" in (await get_json(client, "/api/inventory/devices/ninja/a%20b", 400))["error"]


async def test_inventory_reads_need_the_read_role_and_are_rate_limited(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    key = "read-key-0123456789-abcdef"
    app = create_app(replace_settings(settings, api_keys=(("read", key),), rate_limit_per_minute=2))
    client = await aiohttp_client(app)
    await early_in_a_rate_window()
    assert (await client.get("/api/inventory/summary")).status == 401
    headers = {"X-API-Key": key}
    assert (await client.get("/api/inventory/summary", headers=headers)).status == 200
    assert (await client.get("/api/inventory/devices", headers=headers)).status == 200
    limited = await client.get("/api/inventory/devices", headers=headers)
    assert limited.status == 429 and "Retry-After" in limited.headers


async def test_every_inventory_answer_matches_the_openapi_document(client, filled) -> None:  # type: ignore[no-untyped-def]
    doc = await (await client.get("/api/openapi.json")).json()
    contract = Contract(doc)
    devices = "/api/inventory/devices"
    page = await contract.call(client, "GET", devices, 200, params={"limit": "3", "removed": "any"})
    await contract.call(client, "GET", devices, 200, params={"cursor": page["next_cursor"], "q": "WS"})
    await contract.call(client, "GET", devices, 400, params={"platform": "amiga"})
    one = "/api/inventory/devices/{source}/{device_id}"
    await contract.call(client, "GET", one, 200, path={"source": "ninja", "device_id": "12"})
    await contract.call(client, "GET", one, 200, path={"source": "threatlocker", "device_id": "guid-5"})
    await contract.call(client, "GET", one, 404, path={"source": "ninja", "device_id": "404"})
    await contract.call(client, "GET", one, 400, path={"source": "nope", "device_id": "1"})
    await contract.call(client, "GET", "/api/inventory/summary", 200)
    # Every route refuses a query parameter it does not accept (tests/test_query_parameters.py).
    await contract.call(client, "GET", "/api/inventory/summary", 400, params={"unknown": "1"})
    documented = {(m, p, s) for p, item in doc["paths"].items() if p.startswith("/api/inventory/")
                  for m, op in item.items() for s in op["responses"]}  # fmt: skip
    provoked = {(m.lower(), p, s) for m, p, s in contract.seen}
    assert {d for d in documented if d[2] not in NOT_PROVOKED} == provoked
