"""The OpenAPI document is valid, covers exactly the app's routes, and is true: real responses
validate against the documented schemas, statuses and headers, and the request schemas accept
exactly the bodies the server accepts."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator

from server.app import create_app
from server.keys import REGISTRY, SETTINGS
from server.security.cors import is_preflight_route
from server.service.openapi_document import build_openapi
from tests.support.collectors_file import write_collectors_file
from tests.support.openapi_contract import NOT_PROVOKED, UNKNOWN_BATCH, UNKNOWN_JOB, Contract
from tests.support.runs import trigger

HOW_TO_FIX = "Describe it in the openapi.py part of its package, with every status it can answer."


def routed_operations(app: web.Application) -> set[tuple[str, str]]:
    """``(METHOD, path template)`` of every route, minus HEAD twins, CORS preflights and static file trees."""
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method == "HEAD":
            continue
        if is_preflight_route(route):  # CORS preflights, on every route: described in the API reference
            continue
        found.add((route.method, resource.canonical))
    return found


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in methods}


@pytest.fixture
async def doc(client) -> dict[str, Any]:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


@pytest.fixture
def contract(doc) -> Contract:
    return Contract(doc)


async def test_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(doc).validate()


def test_document_is_valid_with_no_collectors_or_docs():
    OpenAPIV31SpecValidator(build_openapi([], [])).validate()


async def test_every_route_is_documented(client, doc):
    missing = routed_operations(client.app) - documented_operations(doc)
    assert not missing, (
        "Routes missing from the OpenAPI document: "
        + ", ".join(f"{method} {path}" for method, path in sorted(missing, key=lambda mp: (mp[1], mp[0])))
        + ". "
        + HOW_TO_FIX
    )


async def test_every_documented_operation_exists(client, doc):
    extra = documented_operations(doc) - routed_operations(client.app)
    assert not extra, "Documented in an openapi.py part but not routed by the app: " + ", ".join(
        f"{method} {path}" for method, path in sorted(extra)
    )


async def test_every_documented_operation_has_a_unique_id(doc):
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert len(ids) == len(set(ids))


async def test_enums_follow_the_app(client, doc):
    schemas = doc["components"]["schemas"]
    known = sorted(client.app[REGISTRY])
    assert schemas["TriggerRequest"]["properties"]["collectors"]["items"]["enum"] == known
    index = await (await client.get("/api/docs")).json()
    assert schemas["DocsIndex"]["properties"]["documents"]["items"]["properties"]["name"]["enum"] == [
        d["name"] for d in index["documents"]
    ]


async def test_each_app_in_a_process_documents_its_own_collectors(aiohttp_client, settings, tmp_path):
    """The encoded document is kept per process for each registry (openapi_body): an app with
    other collectors gets a document of its own, and one like the first gets the first's."""
    command = [sys.executable, "-c", "pass"]
    enums: list[list[str]] = []
    for names in (["alpha"], ["alpha", "beta"], ["alpha"]):
        collectors = write_collectors_file(
            tmp_path / f"{len(enums)}.toml", {name: {"command": command} for name in names}
        )
        app_client = await aiohttp_client(create_app(dataclasses.replace(settings, collectors_file=collectors)))
        served = await (await app_client.get("/api/openapi.json")).json()
        enums.append(served["components"]["schemas"]["TriggerRequest"]["properties"]["collectors"]["items"]["enum"])
        assert enums[-1] == sorted(app_client.app[REGISTRY])
    assert "alpha" in enums[0] and "beta" not in enums[0]
    assert enums[1] == sorted([*enums[0], "beta"]) and enums[2] == enums[0]


RUN = "/api/collectors/run"
BATCH = "/api/collectors/runs/batch/{batch_id}"
BATCH_CANCEL = "/api/collectors/runs/batch/{batch_id}/cancel"
JOB = "/api/collectors/runs/job/{job_id}"
JOB_CANCEL = "/api/collectors/runs/job/{job_id}/cancel"
PROGRESS = "/api/collectors/runs/job/{job_id}/progress"
LATEST = "/api/collectors/runs/latest"
HISTORY = "/api/collectors/history"


async def etag_of(client: TestClient, path: str) -> str:
    return (await client.get(path)).headers["ETag"]


async def test_a_run_from_trigger_to_terminal_matches_the_document(client, contract):
    c = contract
    created = await c.call(client, "POST", RUN, 201, json={"collectors": ["demo", "ninja"], "priority": "high"})
    batch_id = created["batch_id"]
    demo_id, ninja_id = (job["job_id"] for job in created["collectors"])
    batch_path, demo_path = {"batch_id": batch_id}, {"job_id": demo_id}

    assert (await c.call(client, "GET", BATCH, 200, path=batch_path))["status"] == "queued"
    etag = await etag_of(client, f"/api/collectors/runs/batch/{batch_id}")
    await c.call(client, "GET", BATCH, 304, path=batch_path, headers={"If-None-Match": etag})

    progress = {"status": "running", "progress_percent": 40, "message": "Page 4/10"}
    await c.call(client, "POST", PROGRESS, 200, path=demo_path, json=progress)
    job = await c.call(client, "GET", JOB, 200, path=demo_path)
    assert (job["status"], job["batch_status"]) == ("running", "running")
    etag = await etag_of(client, f"/api/collectors/runs/job/{demo_id}")
    await c.call(client, "GET", JOB, 304, path=demo_path, headers={"If-None-Match": etag})
    await c.call(client, "GET", BATCH, 200, path=batch_path, headers={"If-None-Match": '"b-1", "x"'})

    latest = await c.call(client, "GET", LATEST, 200, params={"collectors": "ninja,demo"})
    assert [run["job_id"] for run in latest["latest_runs"]] == [ninja_id, demo_id]
    await c.call(client, "GET", LATEST, 200)
    await c.call(client, "GET", LATEST, 304, headers={"If-None-Match": await etag_of(client, LATEST)})

    await c.call(client, "POST", PROGRESS, 200, path=demo_path, json={"status": "completed", "message": "Done"})
    failure = {"status": "failed", "progress_percent": None, "message": None, "error": "credentials not configured"}
    await c.call(client, "POST", PROGRESS, 200, path={"job_id": ninja_id}, json=failure)
    batch = await c.call(client, "GET", BATCH, 200, path=batch_path)
    assert batch["status"] == "failed" and batch["error"] and batch["duration_seconds"] is not None
    history = await c.call(client, "GET", HISTORY, 200, params={"limit": "5", "collectors": "demo"})
    assert history["collection_history"][0]["duration"] is not None

    await c.call(client, "POST", PROGRESS, 409, path=demo_path, json={"status": "running"})
    await c.call(client, "POST", JOB_CANCEL, 409, path=demo_path)
    await c.call(client, "POST", BATCH_CANCEL, 409, path=batch_path)


async def test_cancellation_matches_the_document(client, contract):
    created = await trigger(client, "demo", "threatlocker", contract=contract)
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    job = await contract.call(client, "POST", JOB_CANCEL, 200, path={"job_id": job_id})
    assert job["status"] == "cancelled"
    batch = await contract.call(client, "POST", BATCH_CANCEL, 200, path={"batch_id": batch_id})
    assert batch["status"] == "cancelled" and batch["ended_at"] is not None


async def test_client_errors_match_the_document(client, contract):
    c = contract
    body: Any
    for body in ({"collectors": []}, {"collectors": ["nope"]}, {"collectors": ["demo"], "extra": 1}):
        await c.call(client, "POST", RUN, 400, json=body)
    await c.call(client, "POST", RUN, 400, data=b"{not json", headers={"Content-Type": "application/json"})
    await c.call(client, "POST", RUN, 415, data=b"<x/>", headers={"Content-Type": "application/xml"})
    for template, unknown, malformed in (
        (BATCH, UNKNOWN_BATCH, {"batch_id": "bc_1"}),
        (BATCH_CANCEL, UNKNOWN_BATCH, {"batch_id": "x"}),
        (JOB, UNKNOWN_JOB, {"job_id": "NI_12345678"}),
        (JOB_CANCEL, UNKNOWN_JOB, {"job_id": "n_12345678"}),
    ):
        method = "POST" if template.endswith("cancel") else "GET"
        await c.call(client, method, template, 404, path=unknown)
        await c.call(client, method, template, 404, path=malformed)  # a malformed path id names nothing
    await c.call(client, "POST", PROGRESS, 404, path=UNKNOWN_JOB, json={"status": "running"})
    await c.call(client, "POST", PROGRESS, 404, path={"job_id": "x"}, json={"status": "running"})
    await c.call(client, "POST", PROGRESS, 400, path=UNKNOWN_JOB, json={"status": "paused"})
    await c.call(
        client,
        "POST",
        PROGRESS,
        415,
        path=UNKNOWN_JOB,
        data=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await c.call(client, "GET", LATEST, 400, params={"collectors": "demo,demo"})
    await c.call(client, "GET", HISTORY, 400, params={"limit": "0"})
    await c.call(client, "GET", HISTORY, 400, params={"limit": str(10**6)})


async def test_other_endpoints_match_the_document(client, contract):
    c = contract
    await c.call(client, "GET", "/api/collectors", 200)
    await c.call(client, "GET", "/api/openapi.json", 200)
    index = await c.call(client, "GET", "/api/docs", 200)
    name = {"name": index["documents"][0]["name"]}
    await c.call(client, "GET", "/api/docs/{name}", 200, path=name)
    etag = await etag_of(client, index["documents"][0]["url"])
    await c.call(client, "GET", "/api/docs/{name}", 304, path=name, headers={"If-None-Match": etag})
    await c.call(client, "GET", "/api/docs/{name}", 404, path={"name": "..%2fsetup.py"})
    await c.call(client, "GET", "/healthz", 200)
    await c.call(client, "GET", "/readyz", 200)
    await c.call(client, "GET", "/", 200)
    # Every operation refuses a query parameter it does not accept (tests/test_query_parameters.py).
    for template, path in (
        ("/api/collectors", {}),
        ("/api/openapi.json", {}),
        ("/api/docs", {}),
        ("/api/docs/{name}", name),
        ("/healthz", {}),
        ("/readyz", {}),
        ("/", {}),
    ):
        await c.call(client, "GET", template, 400, path=path, params={"unknown": "1"})
    for method, template, path in (
        ("GET", BATCH, UNKNOWN_BATCH),
        ("GET", JOB, UNKNOWN_JOB),
        ("POST", BATCH_CANCEL, UNKNOWN_BATCH),
        ("POST", JOB_CANCEL, UNKNOWN_JOB),
    ):
        await c.call(client, method, template, 400, path=path, params={"unknown": "1"})


async def test_body_too_large_is_the_documented_error(client, contract):
    big = {"collectors": ["demo"], "priority": "x" * (client.app[SETTINGS].max_body_bytes + 1)}
    await contract.call(client, "POST", RUN, 413, json=big)


async def test_every_documented_status_of_the_run_endpoints_is_provoked(client, contract):
    # Runs every scenario above against one contract, then checks that none of the documented
    # statuses of these operations is left unexercised (a status the code can no longer return
    # should not stay in the document either).
    for scenario in (
        test_a_run_from_trigger_to_terminal_matches_the_document,
        test_cancellation_matches_the_document,
        test_client_errors_match_the_document,
        test_other_endpoints_match_the_document,
    ):
        await scenario(client, contract)
    exercised = {(method, template) for method, template, _ in contract.seen}
    unprovoked = sorted(
        f"{method} {template} {status}"
        for method, template in exercised
        for status in contract.doc["paths"][template][method.lower()]["responses"]
        if status not in NOT_PROVOKED and (method, template, status) not in contract.seen
    )
    assert not unprovoked, "documented but never seen: " + ", ".join(unprovoked)


def request_cases() -> Iterator[tuple[str, Any]]:
    """Bodies for the two POST endpoints that take one, valid and not."""
    body: Any
    for body in (
        {"collectors": ["demo"]},
        {"collectors": ["demo", "ninja"], "priority": "low"},
        {"collectors": ["demo"], "priority": "urgent"},
        {"collectors": ["demo"], "priority": None},
        {"collectors": []},
        {"collectors": "demo"},
        {"collectors": ["demo", "demo"]},
        {"collectors": ["demo", 1]},
        {"collectors": ["unknown"]},
        {"collectors": ["demo"], "extra": True},
        {"priority": "high"},
        ["demo"],
        "demo",
        None,
    ):
        yield RUN, body
    for body in (
        {"status": "running"},
        {"status": "running", "progress_percent": 0, "message": "", "error": None},
        {"status": "completed", "progress_percent": 100},
        {"status": "failed", "error": "boom"},
        {"status": "cancelled"},
        {"status": "queued"},
        {"status": "paused"},
        {"progress_percent": 5},
        {"status": "running", "progress_percent": 101},
        {"status": "running", "progress_percent": -1},
        {"status": "running", "progress_percent": 5.5},
        {"status": "running", "progress_percent": True},
        {"status": "running", "progress_percent": "5"},
        {"status": "running", "message": 5},
        {"status": "running", "message": "x" * 1000},
        {"status": "running", "message": "x" * 1001},
        {"status": "running", "error": "e" * 4001},
        {"status": "running", "message": "nul\u0000"},
        {"status": "running", "pid": 1},
    ):
        yield PROGRESS, body


async def test_request_schemas_accept_exactly_what_the_server_accepts(client, contract):
    mismatches = []
    for template, body in request_cases():
        job_id = (await trigger(client, "demo", contract=contract))["collectors"][0]["job_id"]
        expected = 201 if template == RUN else 200
        resp = await client.post(template.format(job_id=job_id), json=body)
        await resp.read()
        accepted = resp.status == expected
        assert resp.status in (expected, 400), (template, body, resp.status)
        if accepted != contract.request_schema_accepts(template, body):
            mismatches.append(f"{template} {json.dumps(body)[:80]}: server {resp.status}")
    assert not mismatches, "request schema disagrees with the server: " + "; ".join(mismatches)


async def test_unknown_methods_and_paths_answer_in_the_error_shape(client, contract):
    error_schema = {"$ref": "#/components/schemas/Error"}
    for method, path, status in (
        ("DELETE", "/api/collectors/run", 405),
        ("GET", "/api/nope", 404),
        ("PUT", "/api/collectors/runs/batch/bc_00000000", 405),
    ):
        resp = await client.request(method, path)
        assert resp.status == status
        contract.check_body(error_schema, await resp.json(), f"{method} {path}")


async def test_an_integral_float_percent_is_accepted_as_the_schema_says(client, contract):
    body = {"status": "running", "progress_percent": 50.0}
    assert contract.request_schema_accepts(PROGRESS, body)
    job_id = (await trigger(client, "demo", contract=contract))["collectors"][0]["job_id"]
    resp = await client.post(f"/api/collectors/runs/job/{job_id}/progress", json=body)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["progress_percent"] == 50
