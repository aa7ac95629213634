"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document (schemathesis).

The server is the real app on a real socket (in a thread of the test process, so that its two
outward seams can be replaced: no DNS lookup at webhook registration, and the dispatcher's
resolver answers loopback for every name, which its guard refuses before connecting, so no
generated receiver URL is ever contacted). Schemathesis reads ``/api/openapi.json`` from it
and sends generated requests, valid and invalid, to every operation twice: with an admin API
key, and with no credentials. For each response:

- no 5xx;
- the status code, content type, headers and body are the ones the document gives for that
  operation (schemathesis' checks), and invalid input is refused;
- the auth matrix: without credentials an operation that declares ``security`` answers 401
  and a public one never does; the admin key is never refused (401/403).

The operations are fuzzed in three groups, one test module each (GROUPS; tests/fuzz/test_groups.py checks
that every operation is in exactly one): a module runs whole on one pytest-xdist worker, and the
fuzzer and the server it fuzzes share that process's one core, so the whole API in one module
was the suite's longest path (about 80 s of CPU). Bounded so the suite stays fast: MAX_EXAMPLES
per operation and identity, derandomized (the same requests every run). The event streams and the
WebSocket are left out: they do not end, and tests/test_live_*.py and tests/test_variances_live.py
cover them. Long-poll ``wait`` is capped at one second.
"""

from __future__ import annotations

import asyncio
import collections
import http.cookiejar
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from collectors.registry import load_registry
from server.app import create_app
from server.package_data import DOCS_DIR
from server.service.doc_routes import load_documents
from server.service.openapi_document import build_openapi
from server.settings import Settings
from server.webhooks import dispatcher
from server.webhooks.rules import address_guard

ADMIN_KEY = "fuzz-admin-key-0123456789abcdef"
MAX_EXAMPLES = 10
STREAMING_OPERATIONS = (
    "streamBatch",
    "streamJob",
    "streamCollectors",
    "streamJobLogs",
    "streamVarianceChanges",
    "websocket",
)
# Where a schema-valid request may still be refused, for reasons no schema can state (each
# operation's description does): a receiver URL's host can be a local name or resolve to a
# private address; an inventory cursor is opaque, valid only as the server gave it out; a
# schedule's time zone must be one the machine's IANA database knows, and its cron fields must
# name times that exist; a collector name is accepted when it is configured or has runs, a
# history cursor only as the server gave it out, and since must not be after until; and the
# variances' rules below.
NOT_DECIDED_BY_THE_SCHEMA = {
    "getLatestRuns": [positive_data_acceptance],
    "getHistory": [positive_data_acceptance],
    "listBatches": [positive_data_acceptance],
    "getStats": [positive_data_acceptance],
    "createWebhook": [positive_data_acceptance],
    "updateWebhook": [positive_data_acceptance],
    "listInventoryDevices": [positive_data_acceptance],
    "createSchedule": [positive_data_acceptance],
    "updateSchedule": [positive_data_acceptance],
    # A variances cursor is opaque too; reason and expires_on go with the accept action only, and an
    # expiry must not be in the past; a trends range must not run backwards or span over a year.
    "listExceptions": [positive_data_acceptance],
    "bulkUpdateExceptions": [positive_data_acceptance],
    "getVarianceTrends": [positive_data_acceptance],
}
# Requests sent, per (identity, operation id): the last test reports and checks them.
SENT: collections.Counter[tuple[str, str]] = collections.Counter()
STARTED: dict[str, float] = {}  # group -> when its first fuzz request was sent
CLIENTS: dict[str, requests.Session] = {}  # fuzz server's base URL -> the session its requests go through


class LoopbackResolver(aiohttp.abc.AbstractResolver):
    """Every name resolves to 127.0.0.1, which the dispatcher's guard refuses to connect to."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": 2, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


async def public_answer(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]  # what a public name would resolve to; nothing is contacted


def client_session() -> requests.Session:
    """The HTTP client a fuzz server's requests go through: one session, so one keep-alive
    connection, rather than the new session and TCP connection case.call opens for each request
    when given none. It sends what case.call sends without one: no default headers of its own,
    no proxy or netrc from the environment (the server is on loopback), and no cookie kept from
    one request to the next."""
    session = requests.Session()
    session.headers.clear()
    session.trust_env = False
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


@pytest.fixture(scope="module")
def fuzz_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    patch = pytest.MonkeyPatch()
    patch.setattr(address_guard, "resolve_addresses", public_answer)
    patch.setattr(
        dispatcher,
        "make_connector",
        lambda **kw: address_guard.make_connector(**{**kw, "resolver": LoopbackResolver()}),
    )
    app_settings = Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("fuzz"),
        run_collectors=False,  # queued jobs stay queued: nothing runs
        api_keys=(("admin", ADMIN_KEY),),
        rate_limit_per_minute=1_000_000,
    )
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    address: list[str] = []
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(create_app(app_settings), access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            host, port = runner.addresses[0][:2]
            address.append(f"http://{host}:{port}")
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=serve, name="fuzz-server", daemon=True)
    thread.start()
    ready.wait(60)
    if failure:
        raise failure[0]
    assert address, "the fuzz server did not start within 60 s"
    CLIENTS[address[0]] = client_session()
    try:
        yield address[0]
    finally:
        CLIENTS.pop(address[0]).close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        patch.undo()


# The document the fuzz server serves, built the way it builds it (its collectors and documents).
# Built here rather than fetched, because the tests, one per operation, must exist when pytest
# collects them; the first test below checks that the server serves exactly this document.
DOCUMENT = build_openapi(load_registry(None), load_documents(DOCS_DIR))
# The groups, by path: each a module of its own in tests/fuzz/ (test_runs.py, test_variances.py, test_rest.py),
# of about the same CPU (34-35 s each, with its PostgreSQL and pytest's start, alone with -n 0, load 10-15).
GROUPS = {
    "runs": r"^/api/(collectors|runners|me|status|inventory)(/|$)",
    "variances": r"^/api/(variance-report|variances|exceptions|devices)(/|$)",
}
REST = "rest"  # every other operation


def group_of(path: str) -> str:
    return next((name for name, pattern in GROUPS.items() if re.match(pattern, path)), REST)


def operations_of(group: str) -> set[str]:
    """The fuzzed operations (by operationId) whose path is in ``group``."""
    return {
        op["operationId"]
        for path, item in DOCUMENT["paths"].items()
        for op in item.values()
        if op["operationId"] not in STREAMING_OPERATIONS and group_of(path) == group
    }


def labels_of(group: str) -> dict[str, str]:
    """``group``'s fuzzed operations in document order: label ("GET /api/status") -> operationId."""
    fuzzed = operations_of(group)
    return {
        f"{method.upper()} {path}": op["operationId"]
        for path, item in DOCUMENT["paths"].items()
        for method, op in item.items()
        if op["operationId"] in fuzzed
    }


@pytest.fixture
def fuzzed_operation(request: pytest.FixtureRequest) -> Any:
    """The schemathesis schema of one operation (the test's parameter, its operationId): the whole
    document, with every other operation turned off (so that schemathesis still knows, say, that
    a path has a PUT beside the GET it fuzzes)."""
    only = schemathesis.Config.from_dict({"operations": [{"exclude-operation-id": request.param, "enabled": False}]})
    return schemathesis.openapi.from_dict(DOCUMENT, config=only)


# A fuzz test item is one operation, whose cases schemathesis builds when the item runs (its
# fixture-based loader), not when pytest collects it: every pytest-xdist worker collects every
# module, and building every operation's cases at collection (schema.parametrize) cost each
# worker about 12.7 s of CPU for the one worker that runs each module.
LAZY = schemathesis.pytest.from_fixture("fuzzed_operation")


bounded = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def send_and_check(case: Any, base_url: str, identity: str) -> None:
    headers = {"X-API-Key": ADMIN_KEY} if identity == "admin" else {}
    if isinstance(case.query, dict) and "wait" in case.query:
        case.query["wait"] = "1"  # long-poll: a second is enough to exercise it
    STARTED.setdefault(group_of(case.operation.path), time.monotonic())
    response = case.call(base_url=base_url, session=CLIENTS[base_url], headers=headers, timeout=15)
    operation = case.operation.definition.raw
    SENT[(identity, operation["operationId"])] += 1
    case.validate_response(
        response, headers=headers, excluded_checks=NOT_DECIDED_BY_THE_SCHEMA.get(operation["operationId"], [])
    )
    status = response.status_code
    assert status < 500, f"{case.method} {case.formatted_path}: {status} {response.text[:300]}"
    if case.method.upper() != case.operation.method.upper():
        return  # a method the path does not have (schemathesis tries some): 405, checked above
    if identity == "admin":
        assert status not in (401, 403), f"the admin key was refused: {response.text[:300]}"
    elif "security" in operation:
        assert status == 401, f"{case.method} {case.formatted_path} without credentials answered {status}"
    else:
        assert status != 401


def check_the_served_document(base_url: str) -> None:
    with urllib.request.urlopen(f"{base_url}/api/openapi.json", timeout=10) as resp:
        assert json.loads(resp.read()) == DOCUMENT


def check_every_operation_reached_both_ways(group: str) -> None:
    """Each of ``group``'s operations got requests with the admin key and without credentials."""
    operations = operations_of(group)
    missing = sorted(
        f"{identity} {op}" for op in operations for identity in ("admin", "anonymous") if not SENT[(identity, op)]
    )
    assert not missing, f"operations never fuzzed: {missing}"
    sent = sum(count for (_, op), count in SENT.items() if op in operations)
    took = time.monotonic() - STARTED[group]
    print(f"\nfuzz ({group}): {sent} requests to {len(operations)} operations in {took:.1f} s")


def fuzz_tests(group: str) -> dict[str, Any]:
    """The tests of a fuzz module, for its globals(): the served document is the fuzzed one;
    every operation of ``group`` fuzzed with the admin key and without credentials; then (file
    order) each of them reached both ways."""
    labels = labels_of(group)
    each_operation = pytest.mark.parametrize("fuzzed_operation", labels.values(), ids=labels, indirect=True)

    def test_the_server_serves_the_fuzzed_document(fuzz_server: str) -> None:
        check_the_served_document(fuzz_server)

    @each_operation
    @LAZY.parametrize()  # type: ignore[untyped-decorator]
    @bounded
    def test_fuzz_with_an_admin_key(case: Any, fuzz_server: str) -> None:
        send_and_check(case, fuzz_server, "admin")

    @each_operation
    @LAZY.parametrize()  # type: ignore[untyped-decorator]
    @bounded
    def test_fuzz_with_no_credentials(case: Any, fuzz_server: str) -> None:
        send_and_check(case, fuzz_server, "anonymous")

    def test_fuzz_reached_every_operation_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
        with capsys.disabled():
            check_every_operation_reached_both_ways(group)

    return {
        "test_the_server_serves_the_fuzzed_document": test_the_server_serves_the_fuzzed_document,
        "test_fuzz_with_an_admin_key": test_fuzz_with_an_admin_key,  # (the lazy wrapper's own name is another)
        "test_fuzz_with_no_credentials": test_fuzz_with_no_credentials,
        "test_fuzz_reached_every_operation_both_ways": test_fuzz_reached_every_operation_both_ways,
    }
