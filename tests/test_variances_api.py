"""The variance API (docs/VARIANCES.md) over variances the checks found in inventories built for
them: the operators' changes and the lifecycle the next checks drive, reports by day from the
history, exports, bad input, roles; every answer checked against the OpenAPI document."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from urllib.parse import urlencode

import openpyxl
import pytest

from collectors.variance_settings import VARIANCE_TYPES
from server.app import create_app
from server.security.api_keys import create_key
from server.variances import exports
from server.variances.exports import COLUMNS, EXCEL_COLUMNS
from tests.support.openapi_contract import Contract
from tests.support.variances import (
    baseline,
    check,
    empty_variances,
    history,
    ninja,
    threatlocker,
    variances,
    write_source,
)

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
async def api(aiohttp_client, settings, db) -> Any:  # type: ignore[no-untyped-def]
    """A client with a trigger key (alice) and a read key (reader); the variances found in an
    inventory with one variance of four types."""
    empty_variances(db)
    with db.cursor() as cur:
        cur.execute("DELETE FROM api_keys")
    trigger_key, _ = create_key(db, "alice", "trigger")
    read_key, _ = create_key(db, "reader", "read")
    n, t = baseline()
    write_source(
        db,
        settings.database_url,
        "ninja",
        [*n, ninja("90", "NJ-ONLY"), ninja("91", "WS-NAMED", display_name="Reception"), ninja("92", "WS-DUP")],
    )
    write_source(
        db, settings.database_url, "threatlocker",
        [*t, threatlocker("g-1", "tl-only.corp.example"),
         threatlocker("g-2", "ws-named.corp.example", display_name="Front"),
         threatlocker("g-3", "ws-dup.corp.example"), threatlocker("g-4", "WS-DUP")],
    )  # fmt: skip
    check(settings.database_url)
    client = await aiohttp_client(create_app(settings))
    doc = await (await client.get("/api/openapi.json", headers={"X-API-Key": read_key})).json()
    return {
        "client": client,
        "contract": Contract(doc),
        "trigger": {"X-API-Key": trigger_key},
        "read": {"X-API-Key": read_key},
        "db": db,
        "dsn": settings.database_url,
    }


def _ids(db: Any) -> dict[str, int]:
    return {t: row["id"] for (t, _), row in variances(db).items()}


async def test_the_latest_report_has_the_dashboards_keys_and_every_block(api) -> None:  # type: ignore[no-untyped-def]
    client, contract, read = api["client"], api["contract"], api["read"]
    report = await contract.call(client, "GET", "/api/variance-report/latest", 200, headers=read)
    assert report["summary"] == {"total_exceptions": 4, "unresolved_count": 4, "resolved_count": 0}
    assert {t: n for t, n in report["exception_counts"].items() if n} == {
        "MISSING_NINJA": 1, "MISSING_THREATLOCKER": 1, "DUPLICATE_TL": 1, "DISPLAY_NAME_MISMATCH": 1,
    }  # fmt: skip
    assert report["report_date"] == TODAY.isoformat() and report["data_status"]["status"] == "current"
    (entry,) = report["display_name_mismatches"]["by_organization"]["Acme"]
    assert (entry["ninja_display_name"], entry["threatlocker_display_name"]) == ("Reception", "Front")
    assert report["missing_in_threatlocker"]["total_count"] == 1
    assert report["threatlocker_duplicates"]["total_count"] == 1
    status = await contract.call(client, "GET", "/api/status", 200, headers=read)
    assert status["device_counts"] == {"Ninja": 8, "ThreatLocker": 9} and status["total_exceptions"] == 4
    assert status["vendor_status"]["Ninja"]["freshness_status"] == "current"
    filtered = await contract.call(client, "GET", "/api/variance-report/filtered", 200, headers=read)
    assert filtered["total_devices"] == {"ninja": 8, "threatlocker": 9} and filtered["total_variances"] == 4
    assert [d["hostname"] for d in filtered["threatlocker_duplicates"]["devices"]] == ["WS-DUP"]


async def test_a_manual_fix_survives_a_same_day_rerun_and_the_next_check_decides(api) -> None:  # type: ignore[no-untyped-def]
    client, contract, db = api["client"], api["contract"], api["db"]
    ids = _ids(db)
    fixed = await contract.call(
        client, "POST", "/api/exceptions/{exception_id}/mark-manually-fixed", 200,
        path={"exception_id": ids["DISPLAY_NAME_MISMATCH"]}, headers=api["trigger"],
        json={"notes": "renamed in ThreatLocker", "update_type": "display_name", "new_value": "Reception"},
    )  # fmt: skip
    assert fixed["variance_status"] == "manually_fixed" and fixed["updated_by"] == "alice"
    by_host = await contract.call(
        client, "POST", "/api/exceptions/mark-fixed-by-hostname", 200, headers=api["trigger"],
        json={"hostname": "NJ-ONLY.corp.example", "type": "MISSING_THREATLOCKER", "updated_by": "Bob"},
    )  # fmt: skip
    assert by_host["status"] == "updated" and by_host["exceptions_updated"] == 1
    check(api["dsn"])  # the same data, the same day: the fixes are still there, but the data says otherwise
    rows = variances(db)
    display = rows[("DISPLAY_NAME_MISMATCH", "ws-named")]
    assert display["status"] == "active" and display["note"] == "renamed in ThreatLocker"
    assert history(db, display["id"])[1:] == [
        ("alice", "active", "manually_fixed", "renamed in ThreatLocker"),
        ("cross-vendor-checks", "manually_fixed", "active", "still found after the manual fix (its note is kept)"),
    ]
    assert history(db, ids["MISSING_THREATLOCKER"])[1][0] == "alice (as Bob)"
    # fixed for real this time: the next check confirms it
    await contract.call(
        client, "POST", "/api/exceptions/{exception_id}/mark-manually-fixed", 200,
        path={"exception_id": display["id"]}, headers=api["trigger"], json={},
    )  # fmt: skip
    n, _ = baseline()
    write_source(
        db,
        api["dsn"],
        "ninja",
        [*n, ninja("90", "NJ-ONLY"), ninja("91", "WS-NAMED", display_name="Front"), ninja("92", "WS-DUP")],
    )
    result = check(api["dsn"])
    assert result.verified == 1
    assert variances(db)[("DISPLAY_NAME_MISMATCH", "ws-named")]["status"] == "collector_verified"


async def test_an_accepted_variance_is_active_again_after_its_expiry(api) -> None:  # type: ignore[no-untyped-def]
    client, contract, db = api["client"], api["contract"], api["db"]
    variance_id = _ids(db)["MISSING_NINJA"]
    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    done = await contract.call(
        client, "POST", "/api/exceptions/bulk-update", 200, headers=api["trigger"],
        json={"exception_ids": [variance_id], "action": "accept", "reason": "lab machine", "expires_on": tomorrow},
    )  # fmt: skip
    assert done["updated_count"] == 1 and done["exception_ids"] == [variance_id]
    check(api["dsn"])  # still accepted today, and still found
    row = variances(db)[("MISSING_NINJA", "tl-only")]
    assert (row["status"], row["reason"], row["expires_on"].isoformat()) == ("accepted", "lab machine", tomorrow)
    check(api["dsn"], today=TODAY + dt.timedelta(days=2))  # the day after the expiry
    assert variances(db)[("MISSING_NINJA", "tl-only")]["status"] == "active"
    assert history(db, variance_id)[-1] == (
        "cross-vendor-checks", "accepted", "active", f"the acceptance expired after {tomorrow}",
    )  # fmt: skip
    reopened = await contract.call(
        client, "POST", "/api/exceptions/bulk-update", 200, headers=api["trigger"],
        json={"exception_ids": [variance_id], "action": "resolve"},
    )  # fmt: skip
    assert reopened["updated_count"] == 1
    again = await contract.call(
        client, "POST", "/api/exceptions/bulk-update", 200, headers=api["trigger"],
        json={"exception_ids": [variance_id], "action": "reopen", "notes": "not fixed after all"},
    )  # fmt: skip
    assert again["updated_count"] == 1 and variances(db)[("MISSING_NINJA", "tl-only")]["status"] == "active"


async def test_a_past_day_is_answered_from_the_history(api) -> None:  # type: ignore[no-untyped-def]
    client, contract, db = api["client"], api["contract"], api["db"]
    with db.cursor() as cur:  # everything so far happened yesterday
        cur.execute("UPDATE variance_history SET changed_at = changed_at - interval '1 day'")
        cur.execute("UPDATE variance_checks SET finished_at = finished_at - interval '1 day'")
    ids = _ids(db)
    await contract.call(
        client, "POST", "/api/exceptions/{exception_id}/resolve", 200,
        path={"exception_id": ids["DUPLICATE_TL"]}, headers=api["trigger"], json={"notes": "merged"},
    )  # fmt: skip
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    then = await contract.call(
        client, "GET", "/api/variance-report/{date}", 200, path={"date": yesterday}, headers=api["read"]
    )
    assert then["summary"]["unresolved_count"] == 4 and len(then["exceptions_by_type"]["DUPLICATE_TL"]) == 1
    now = await contract.call(client, "GET", "/api/variance-report/{date}", 200, path={"date": TODAY.isoformat()},
                              headers=api["read"])  # fmt: skip
    assert now["summary"]["unresolved_count"] == 3 and now["exceptions_by_type"]["DUPLICATE_TL"] == []
    with_resolved = await contract.call(
        client, "GET", "/api/variances/historical/{date}", 200, params={"include_resolved": "true"},
        path={"date": TODAY.isoformat()}, headers=api["read"],
    )  # fmt: skip
    assert with_resolved["summary"] == {"total_exceptions": 4, "unresolved_count": 3, "resolved_count": 1}
    assert with_resolved["device_counts"] == {"Ninja": 8, "ThreatLocker": 9}
    dates = await contract.call(client, "GET", "/api/variances/available-dates", 200, headers=api["read"])
    assert [(d["date"], d["ninja_devices"], d["unresolved_exceptions"]) for d in dates["available_dates"]] == [
        (yesterday, 8, 4)
    ]
    trends = await contract.call(
        client, "GET", "/api/variances/trends", 200, params={"start_date": yesterday, "end_date": TODAY.isoformat()},
        headers=api["read"],
    )  # fmt: skip
    assert trends["trends_by_type"]["DUPLICATE_TL"] == [
        {"date": yesterday, "total": 1, "unresolved": 1, "resolved": 0},
        {"date": TODAY.isoformat(), "total": 1, "unresolved": 0, "resolved": 1},
    ]
    await contract.call(client, "GET", "/api/variance-report/{date}", 404, path={"date": "2001-01-01"},
                        headers=api["read"])  # fmt: skip


async def test_a_variances_whole_history_oldest_first(api) -> None:  # type: ignore[no-untyped-def]
    """Every change, the checks' and the operators', more than the status summary's newest 20."""
    client, contract, db = api["client"], api["contract"], api["db"]
    ids = _ids(db)
    variance_id = ids["DISPLAY_NAME_MISMATCH"]
    path = "/api/exceptions/{exception_id}/history"
    await contract.call(
        client, "POST", "/api/exceptions/{exception_id}/mark-manually-fixed", 200,
        path={"exception_id": variance_id}, headers=api["trigger"], json={"notes": "renamed in ThreatLocker"},
    )  # fmt: skip
    check(api["dsn"])  # still found: the check reopens it
    for action in ("resolve", "reopen") * 11:  # 22 more changes: the summary keeps 20 of all
        await contract.call(
            client, "POST", "/api/exceptions/bulk-update", 200, headers=api["trigger"],
            json={"exception_ids": [variance_id], "action": action},
        )  # fmt: skip
    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    await contract.call(
        client, "POST", "/api/exceptions/bulk-update", 200, headers=api["trigger"],
        json={"exception_ids": [variance_id], "action": "accept", "reason": "lab", "expires_on": tomorrow},
    )  # fmt: skip
    answer = await contract.call(client, "GET", path, 200, path={"exception_id": variance_id}, headers=api["read"])
    changes = answer["history"]
    assert answer["exception_id"] == variance_id and len(changes) == 26
    assert [(c["changed_by"], c["from_status"], c["to_status"], c["note"]) for c in changes] == [
        ("cross-vendor-checks", None, "active", history(db, variance_id)[0][3]),
        ("alice", "active", "manually_fixed", "renamed in ThreatLocker"),
        ("cross-vendor-checks", "manually_fixed", "active", "still found after the manual fix (its note is kept)"),
        *[("alice", "active", "resolved", "resolve"), ("alice", "resolved", "active", "reopen")] * 11,
        ("alice", "active", "accepted", f"accepted until {tomorrow}: lab"),
    ]
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)
    assert [c["changed_at"] for c in changes] == sorted(c["changed_at"] for c in changes)
    assert changes[0]["check_id"] is not None and changes[2]["check_id"] is not None
    assert all(c["check_id"] is None for c in changes if c["changed_by"] == "alice")
    summary = await contract.call(client, "GET", "/api/exceptions/status-summary", 200, headers=api["read"])
    assert len([c for c in summary["recent_manual_updates"] if c["exception_id"] == variance_id]) < len(changes)
    other = await contract.call(
        client, "GET", path, 200, path={"exception_id": ids["MISSING_NINJA"]}, headers=api["read"]
    )
    assert [(c["from_status"], c["to_status"]) for c in other["history"]] == [(None, "active")]
    for bad, status, message in (
        ("999999", 404, "Exception not found: 999999"),
        ("abc", 400, "exception id must be a positive integer"),
        ("-1", 400, "exception id must be a positive integer"),
    ):
        response = await client.get(f"/api/exceptions/{bad}/history", headers=api["read"])
        assert response.status == status and message in (await response.json())["error"]
    response = await client.get(f"/api/exceptions/{variance_id}/history?limit=5", headers=api["read"])
    assert response.status == 400 and "limit" in (await response.json())["error"]
    assert (await client.get(f"/api/exceptions/{variance_id}/history")).status == 401


async def test_list_filters_and_cursor_paging(api) -> None:  # type: ignore[no-untyped-def]
    client, contract, read = api["client"], api["contract"], api["read"]
    everything = await contract.call(client, "GET", "/api/exceptions", 200, headers=read)
    assert len(everything) == 4 and [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    response = await client.get("/api/exceptions?limit=3", headers=read)
    first = await response.json()
    cursor = response.headers["X-Next-Cursor"]
    response = await client.get(f"/api/exceptions?limit=3&cursor={cursor}", headers=read)
    assert [e["id"] for e in first + await response.json()] == [e["id"] for e in everything]
    assert "X-Next-Cursor" not in response.headers
    only = await contract.call(
        client, "GET", "/api/exceptions", 200, params={"type": "DUPLICATE_TL,MISSING_NINJA", "q": "tl"}, headers=read
    )
    assert [e["type"] for e in only] == ["MISSING_NINJA"]
    assert await contract.call(client, "GET", "/api/exceptions", 200, params={"resolved": "true"}, headers=read) == []
    org = await contract.call(
        client, "GET", "/api/exceptions", 200, params={"organization": "acme", "status": "active"}, headers=read
    )
    assert len(org) == 4
    count = await contract.call(
        client, "GET", "/api/exceptions/count", 200, params={"type": "DUPLICATE_TL"}, headers=read
    )
    assert count["unresolved_count"] == 1
    summary = await contract.call(client, "GET", "/api/exceptions/status-summary", 200, headers=read)
    assert summary["status_summary"]["active"]["MISSING_NINJA"] == {"total": 1, "resolved": 0, "unresolved": 1}
    found = await contract.call(
        client, "GET", "/api/devices/search", 200, params={"q": "WS-NAMED.corp.example"}, headers=read
    )
    assert found["vendors_found"] == ["ninja", "threatlocker"] and list(found["grouped_by_canonical_key"]) == [
        "ws-named"
    ]


async def test_the_exports_open_with_the_documented_columns(api) -> None:  # type: ignore[no-untyped-def]
    client, read = api["client"], api["read"]
    response = await client.get("/api/variances/export/csv?include_resolved=true", headers=read)
    assert response.status == 200 and response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="variances-{TODAY.isoformat()}.csv"'
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 4
    assert {r["Type"] for r in rows} == {
        "MISSING_NINJA",
        "MISSING_THREATLOCKER",
        "DUPLICATE_TL",
        "DISPLAY_NAME_MISMATCH",
    }
    assert all(r["Resolved"] == "No" and r["First Seen"] and r["Last Seen"] for r in rows)
    response = await client.get("/api/variances/export/excel?variance_type=DUPLICATE_TL", headers=read)
    assert response.status == 200
    book = openpyxl.load_workbook(io.BytesIO(await response.read()), read_only=True)
    assert book.sheetnames == ["Summary", "Exceptions"]
    sheet = list(book["Exceptions"].iter_rows(values_only=True))
    assert sheet[0] == EXCEL_COLUMNS and [r[2] for r in sheet[1:]] == ["DUPLICATE_TL"]
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    assert summary["Total exceptions"] == 1 and set(VARIANCE_TYPES) <= set(summary)


async def _exported(api: Any, query: str) -> list[tuple[str, str, str]]:
    """(type, hostname, status) of the rows of the CSV and of the XLSX, which must agree."""
    client, read = api["client"], api["read"]
    response = await client.get(f"/api/variances/export/csv?{query}", headers=read)
    assert response.status == 200, await response.text()
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    from_csv = sorted((r["Type"], r["Hostname"], r["Variance Status"]) for r in rows)
    response = await client.get(f"/api/variances/export/excel?{query}", headers=read)
    assert response.status == 200, await response.text()
    sheet = list(openpyxl.load_workbook(io.BytesIO(await response.read()), read_only=True)["Exceptions"].values)
    at = {name: i for i, name in enumerate(sheet[0])}
    from_xlsx = sorted((r[at["Type"]], r[at["Hostname"]], r[at["Variance Status"]]) for r in sheet[1:])
    assert from_csv == from_xlsx
    return from_csv


async def test_the_exports_take_the_lists_filters(api) -> None:  # type: ignore[no-untyped-def]
    """The CSV and XLSX hold exactly what GET /api/exceptions lists with the same filters."""
    client, contract, db, read = api["client"], api["contract"], api["db"], api["read"]
    ids = _ids(db)
    with db.cursor() as cur:  # the ThreatLocker-only machine belongs to Globex
        cur.execute("UPDATE variances SET organization = 'Globex' WHERE id = %s", (ids["MISSING_NINJA"],))
    await contract.call(
        client, "POST", "/api/exceptions/{exception_id}/resolve", 200,
        path={"exception_id": ids["DUPLICATE_TL"]}, headers=api["trigger"], json={},
    )  # fmt: skip
    queries = [
        {"organization": "globex"},
        {"organization": "Acme"},
        {"q": "NAMED"},
        {"q": " only ", "type": "MISSING_NINJA,MISSING_THREATLOCKER"},
        {"status": "resolved"},
        {"status": "active,resolved", "organization": "ACME", "q": "ws-"},
        {"include_resolved": "true", "q": "dup"},
        {"status": "resolved", "include_resolved": "false"},
        {"q": "100%"},
    ]
    for params in queries:
        # Without status or include_resolved an export holds the open variances only.
        as_listed = {k: v for k, v in params.items() if k != "include_resolved"}
        if "status" not in params and params.get("include_resolved") != "true":
            as_listed["resolved"] = "false"
        listed = await contract.call(client, "GET", "/api/exceptions", 200, params=as_listed, headers=read)
        exported = await _exported(api, urlencode({"date": "latest", **params}))
        assert exported == sorted((v["type"], v["hostname"], v["variance_status"]) for v in listed), params
    assert [t for t, _, _ in await _exported(api, "organization=Globex")] == ["MISSING_NINJA"]
    assert await _exported(api, "status=resolved") == [("DUPLICATE_TL", "WS-DUP", "resolved")]
    assert len(await _exported(api, "q=WS-")) == 1  # the resolved duplicate is not open: not exported
    # A past day filters the variances as they stood that day.
    assert await _exported(api, f"date={TODAY.isoformat()}&status=resolved") == [("DUPLICATE_TL", "WS-DUP", "resolved")]
    assert [t for t, _, _ in await _exported(api, f"date={TODAY.isoformat()}&organization=GLOBEX")] == ["MISSING_NINJA"]


BAD: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    ("GET", "/api/variance-report/2026-13-01", None, 400, "date: '2026-13-01' is not a calendar date"),
    ("GET", "/api/variance-report/yesterday", None, 400, "date: Invalid date format. Use YYYY-MM-DD"),
    ("GET", "/api/exceptions?type=SITE_MISMATCH", None, 400, "type must be one of MISSING_NINJA"),
    ("GET", "/api/exceptions?resolved=maybe", None, 400, "resolved must be true or false"),
    ("GET", "/api/exceptions?cursor=nope", None, 400, "cursor is not one this server gave out"),
    ("GET", "/api/exceptions?page=2", None, 400, "page"),
    ("GET", "/api/variances/trends?start_date=2026-01-02", None, 400, "start_date and end_date are required"),
    ("GET", "/api/variances/trends?start_date=2026-01-02&end_date=2026-01-01", None, 400, "must not be after"),
    ("GET", "/api/devices/search?q=%20", None, 400, "q (the text to search for) is required"),
    ("GET", "/api/variances/export/csv?status=gone", None, 400, "status must list values of active"),
    ("GET", "/api/variances/export/excel?status=", None, 400, "status must list values of active"),
    ("GET", "/api/variances/export/csv?include_resolved=yes", None, 400, "include_resolved must be true or false"),
    ("GET", f"/api/variances/export/csv?organization={'x' * 1001}", None, 400, "organization"),
    ("GET", "/api/variances/export/excel?q=a%00b", None, 400, "q"),
    ("GET", f"/api/variances/export/excel?q={'x' * 256}", None, 400, "q"),
    ("GET", "/api/variances/export/csv?org=Acme", None, 400, "org"),
    ("POST", "/api/exceptions/abc/resolve", {}, 400, "exception id must be a positive integer"),
    ("POST", "/api/exceptions/999999/resolve", {}, 404, "Exception not found: 999999"),
    ("POST", "/api/exceptions/bulk-update", {"exception_ids": []}, 400, "No exception IDs provided"),
    ("POST", "/api/exceptions/bulk-update", {"exception_ids": [1], "action": "nuke"}, 400, "Invalid action"),
    ("POST", "/api/exceptions/bulk-update", {"exception_ids": [1], "action": "accept"}, 400, "accept needs a reason"),
    ("POST", "/api/exceptions/bulk-update", {"exception_ids": [1], "reason": "x"}, 400, "go with the accept action"),
    ("POST", "/api/exceptions/bulk-update", {"exception_ids": ["1"]}, 400, "exception_ids must be 1 to 1000"),
    ("POST", "/api/exceptions/mark-fixed-by-hostname", {"hostname": " "}, 400, "Hostname is required"),
    ("POST", "/api/exceptions/mark-fixed-by-hostname", {"hostname": "x", "kind": 1}, 400, "Unknown field(s): 'kind'"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD)
async def test_bad_input_is_a_clear_4xx_and_changes_nothing(api, method, path, body, status, message) -> None:  # type: ignore[no-untyped-def]
    before = variances(api["db"])
    response = await api["client"].request(method, path, json=body, headers=api["trigger"])
    assert response.status == status
    assert message in (await response.json())["error"]
    assert variances(api["db"]) == before


async def test_reads_need_the_read_role_and_changes_the_trigger_role(api) -> None:  # type: ignore[no-untyped-def]
    client, db = api["client"], api["db"]
    variance_id = _ids(db)["MISSING_NINJA"]
    assert (await client.get("/api/exceptions")).status == 401
    path = f"/api/exceptions/{variance_id}/resolve"
    assert (await client.post(path, json={})).status == 401
    assert (await client.post(path, json={}, headers=api["read"])).status == 403
    assert (
        await client.put("/api/variances/organization-map", json={"mappings": []}, headers=api["read"])
    ).status == 403
    assert variances(db)[("MISSING_NINJA", "tl-only")]["status"] == "active"
    answer = await api["contract"].call(
        client, "PUT", "/api/variances/organization-map", 200, headers=api["trigger"],
        json={"mappings": [{"ninja_organization": "Acme", "threatlocker_organization": "Acme Holdings"}]},
    )  # fmt: skip
    assert [(m["ninja_organization"], m["updated_by"]) for m in answer["mappings"]] == [("Acme", "alice")]
    assert (await client.post(path, json={"notes": "done"}, headers=api["trigger"])).status == 200
    # Each change, and each refused attempt, is in the audit trail with who asked (docs/AUDIT.md).
    with db.cursor() as cur:
        cur.execute(
            "SELECT action, outcome, status, actor, target_ids FROM audit_log"
            " WHERE action LIKE 'exception.%%' OR action LIKE 'variance.%%' ORDER BY audit_id"
        )
        trail = cur.fetchall()
    assert trail[-5:] == [
        ("exception.resolve", "refused", 401, "anonymous", [str(variance_id)]),
        ("exception.resolve", "refused", 403, "reader", [str(variance_id)]),
        ("variance.organization_map", "refused", 403, "reader", []),
        ("variance.organization_map", "succeeded", None, "alice", []),
        ("exception.resolve", "succeeded", None, "alice", [str(variance_id)]),
    ]


def test_a_cell_that_a_spreadsheet_would_run_as_a_formula_is_escaped() -> None:
    seen = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    row = {
        "id": 7, "type": "MISSING_NINJA", "hostname": "=HYPERLINK(\"http://x\")", "organization": "+Acme",
        "details": {"tl_hostname": "@x"}, "first_seen": seen, "last_seen": seen, "status": "active",
        "resolved_at": None, "resolved_by": None, "updated_at": None, "updated_by": None, "update_type": None,
    }  # fmt: skip
    (cells,) = list(csv.DictReader(io.StringIO(exports.to_csv([row]).decode("utf-8-sig"))))
    assert cells["Hostname"] == '\'=HYPERLINK("http://x")' and cells["Organization"] == "'+Acme"
    assert cells["Date Found"] == "2026-12-01" and cells["First Seen"] == "2026-12-01T08:00:00.000000Z"
