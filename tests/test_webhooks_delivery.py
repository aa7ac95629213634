"""Webhook delivery against real HTTP receivers on loopback: signatures (plain HMAC and the
``standardwebhooks`` verifier), the transactional outbox, retries with the same id and bytes,
410, Retry-After, redirects, rotation, auto-disable, shutdown, and two nodes on one database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from typing import Any

import psycopg2.extras
import pytest
import standardwebhooks
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.observability.metrics import sample_value
from server.settings import Settings
from tests.support.conditions import eventually
from tests.support.database import execute
from tests.support.settings import replace_settings
from tests.support.webhook_receivers import Received, Receiver, start_receiver
from tests.support.webhooks import FAST, attempts_of, deliveries_of, delivery_status, finish_batch, register, rows


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return replace_settings(settings, **FAST)


@pytest.fixture
async def hub(aiohttp_client, fast_settings) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(fast_settings))


@pytest.fixture
async def receiver(aiohttp_server) -> Receiver:  # type: ignore[no-untyped-def]
    return await start_receiver(aiohttp_server)


def plain_hmac_ok(secret: str, got: Received) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = "sha256=" + hmac.new(key, got.body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, sig) for sig in got.headers["x-signature"].split(" "))


async def test_a_completed_batch_is_delivered_signed_with_the_batch_as_get_shows_it(hub, receiver, db):
    hook = await register(hub, receiver.url)
    batch_id = await finish_batch(hub)
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="delivery succeeded")
    assert len(receiver.received) == 1
    got = receiver.received[0]
    payload = json.loads(got.body)
    batch = await (await hub.get(f"/api/collectors/runs/batch/{batch_id}")).json()
    assert payload["type"] == "batch.completed" and payload["delivery_id"] == got.delivery_id
    assert payload["batch_id"] == batch_id and payload["status"] == "completed"
    assert payload["collectors"] == batch["collectors"]
    assert {k: payload[k] for k in batch} == batch
    assert payload["timestamp"].endswith("Z")

    assert got.headers["content-type"] == "application/json"
    assert plain_hmac_ok(hook["secret"], got)
    assert not plain_hmac_ok(hook["secret"], Received(got.body + b" ", got.headers))
    verified = standardwebhooks.Webhook(hook["secret"]).verify(got.body, got.headers)
    assert verified == payload
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(hook["secret"]).verify(got.body, {**got.headers, "webhook-id": "msg_other"})

    listed = await (await hub.get(f"/api/webhooks/{hook['id']}/deliveries")).json()
    (delivery,) = listed["deliveries"]
    assert delivery["delivery_id"] == got.delivery_id and delivery["status"] == "succeeded"
    assert delivery["batch_id"] == batch_id and delivery["next_attempt_at"] is None
    (attempt,) = delivery["attempts"]
    assert attempt["response_status"] == 200 and attempt["response_body"] == "thanks" and attempt["error"] is None


async def test_each_event_reaches_only_its_subscribers(hub, receiver, db):
    failed_only = await register(hub, receiver.url + "/failed", ["batch.failed"])
    cancelled_only = await register(hub, receiver.url + "/cancelled", ["batch.cancelled"])
    await finish_batch(hub, "failed")
    await finish_batch(hub, "cancelled")
    await finish_batch(hub, "completed")
    # The outbox rows exist as soon as the batch is terminal: same transaction.
    assert [d["event"] for d in deliveries_of(db, failed_only["id"])] == ["batch.failed"]
    assert [d["event"] for d in deliveries_of(db, cancelled_only["id"])] == ["batch.cancelled"]
    await eventually(lambda: delivery_status(db, cancelled_only["id"], "succeeded"), what="cancelled delivered")
    await eventually(lambda: delivery_status(db, failed_only["id"], "succeeded"), what="failed delivered")
    types = sorted(json.loads(r.body)["type"] for r in receiver.received)
    assert types == ["batch.cancelled", "batch.failed"]
    failed_body = next(json.loads(r.body) for r in receiver.received if json.loads(r.body)["type"] == "batch.failed")
    assert failed_body["status"] == "failed" and failed_body["error"]


async def test_the_outbox_row_commits_or_rolls_back_with_the_terminal_batch(hub, receiver, db):
    hook = await register(hub, receiver.url)
    resp = await hub.post("/api/collectors/run", json={"collectors": ["demo"]})
    job_id = (await resp.json())["collectors"][0]["job_id"]
    # Hold the dispatcher off this receiver so the row can be inspected before it is sent.
    await hub.patch(f"/api/webhooks/{hook['id']}", json={"enabled": False})
    await execute(db, "UPDATE webhooks SET enabled = true WHERE webhook_id = %s", hook["id"])
    conn = psycopg2.connect(db.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE job_runs SET status = 'completed' WHERE job_id = %s", (job_id,))
            cur.execute("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = %s", (hook["id"],))
            assert cur.fetchone()[0] == 1  # written by the same transaction...
            assert deliveries_of(db, hook["id"]) == []  # ...and invisible until it commits
        conn.rollback()
    finally:
        conn.close()
    assert deliveries_of(db, hook["id"]) == []  # rolled back together with the batch


async def test_a_receiver_down_then_up_gets_each_delivery_once_with_the_same_id(aiohttp_client, fast_settings, db):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hub = await aiohttp_client(create_app(replace_settings(fast_settings, webhook_retry_schedule=(0.2,) * 50)))
    hook = await register(hub, f"http://127.0.0.1:{port}/hook")
    await finish_batch(hub)
    await finish_batch(hub, "failed")

    async def refused_twice() -> bool:
        deliveries = deliveries_of(db, hook["id"])
        return len(deliveries) == 2 and all(len(attempts_of(db, d["delivery_id"])) >= 2 for d in deliveries)

    await eventually(refused_twice, what="two refused attempts per delivery")
    assert all(
        a["error"] and a["response_status"] is None
        for d in deliveries_of(db, hook["id"])
        for a in attempts_of(db, d["delivery_id"])
    )

    receiver = Receiver()
    server = TestServer(receiver.app(), port=port)
    await server.start_server()
    try:
        await eventually(lambda: delivery_status(db, hook["id"], "succeeded", 2), what="both delivered")
    finally:
        await server.close()
    delivery_ids = sorted(d["delivery_id"] for d in deliveries_of(db, hook["id"]))
    assert sorted(receiver.ids()) == delivery_ids  # each once, with the outbox id
    for d in deliveries_of(db, hook["id"]):
        assert receiver.bodies_for(d["delivery_id"]) == [bytes(d["body"])]
        assert json.loads(bytes(d["body"]))["delivery_id"] == d["delivery_id"]


def attempts_metric(outcome: str) -> float:
    return sample_value("collector_hub_webhook_attempts_total", {"outcome": outcome})


async def test_retries_send_identical_bytes_with_fresh_timestamps(hub, receiver, db):
    hook = await register(hub, receiver.url)
    answers = iter([500, 500, 200])
    receiver.answer = lambda got: web.Response(status=next(answers))
    failed_before, delivered_before = attempts_metric("failed"), attempts_metric("delivered")
    await finish_batch(hub)
    (delivery,) = await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="third attempt")
    assert attempts_metric("failed") - failed_before == 2

    async def counted() -> bool:  # counted just after the row is written
        return attempts_metric("delivered") - delivered_before == 1

    await eventually(counted, what="the delivered attempt counted")
    assert len(receiver.received) == 3
    assert len({r.body for r in receiver.received}) == 1 and len(set(receiver.ids())) == 1
    for got in receiver.received:
        standardwebhooks.Webhook(hook["secret"]).verify(got.body, got.headers)
    assert [a["response_status"] for a in attempts_of(db, delivery["delivery_id"])] == [500, 500, 200]


async def test_410_disables_the_receiver(hub, receiver, db):
    hook = await register(hub, receiver.url)
    receiver.answer = lambda got: web.Response(status=410, text="gone for good")
    await finish_batch(hub)
    (delivery,) = await eventually(lambda: delivery_status(db, hook["id"], "failed"), what="failed on 410")
    shown = await (await hub.get(f"/api/webhooks/{hook['id']}")).json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"] and shown["disabled_at"]
    assert len(attempts_of(db, delivery["delivery_id"])) == 1
    await finish_batch(hub)
    assert len(deliveries_of(db, hook["id"])) == 1  # a disabled receiver gets no new deliveries
    resp = await hub.post(f"/api/webhooks/deliveries/{delivery['delivery_id']}/redeliver")
    assert resp.status == 409


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(hub, receiver, db, status):
    hook = await register(hub, receiver.url)
    seen: list[float] = []

    def answer(got: Received) -> web.StreamResponse:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return web.Response(status=status, headers={"Retry-After": "1"})
        return web.Response(status=204)

    receiver.answer = answer
    await finish_batch(hub)
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="delivered after Retry-After")
    # The schedule alone would have retried after ~0.1 s.
    assert 1.0 <= seen[1] - seen[0] < 3.0, seen
    assert len(set(receiver.ids())) == 1


async def test_redirects_are_not_followed_and_count_as_failures(hub, receiver, db):
    hook = await register(hub, receiver.url)
    receiver.answer = lambda got: web.Response(status=307, headers={"Location": "/hook/elsewhere"})
    await finish_batch(hub)
    (delivery,) = await eventually(lambda: delivery_status(db, hook["id"], "failed"), what="schedule exhausted")
    attempts = attempts_of(db, delivery["delivery_id"])
    assert len(attempts) == 4  # first attempt + the 3 scheduled retries
    assert all(a["response_status"] == 307 and "redirect not followed" in a["error"] for a in attempts)
    assert len(receiver.received) == 4  # never a request to /hook/elsewhere

    receiver.answer = lambda got: web.Response(status=200)
    resp = await hub.post(f"/api/webhooks/deliveries/{delivery['delivery_id']}/redeliver")
    assert resp.status == 202 and (await resp.json())["status"] == "pending"
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="redelivered")
    assert len(set(receiver.ids())) == 1 and len({r.body for r in receiver.received}) == 1


async def test_rotation_signs_with_both_secrets_for_a_while(hub, receiver, db):
    hook = await register(hub, receiver.url)
    rotated = await (await hub.post(f"/api/webhooks/{hook['id']}/rotate-secret")).json()
    await finish_batch(hub)
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="delivered")
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert len(got.headers["x-signature"].split(" ")) == 2
    for secret in (hook["secret"], rotated["secret"]):
        standardwebhooks.Webhook(secret).verify(got.body, got.headers)
        assert plain_hmac_ok(secret, got)

    await execute(  # the 24 hours are over
        db,
        "UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second' WHERE webhook_id = %s",
        hook["id"],
    )
    await finish_batch(hub)
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded", 2), what="delivered after expiry")
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    standardwebhooks.Webhook(rotated["secret"]).verify(got.body, got.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(hook["secret"]).verify(got.body, got.headers)


async def test_a_receiver_failing_for_days_is_disabled_and_says_so(hub, receiver, db):
    hook = await register(hub, receiver.url)
    receiver.answer = lambda got: web.Response(status=500, text="still broken")
    # It has been failing for six days already.
    await execute(db, "UPDATE webhooks SET failing_since = now() - interval '6 days' WHERE webhook_id = %s", hook["id"])
    await finish_batch(hub)
    shown = await eventually(lambda: _webhook_if(hub, hook["id"], lambda w: not w["enabled"]), what="receiver disabled")
    assert shown["disabled_reason"].startswith("failing since") and shown["failing_since"]
    (delivery,) = deliveries_of(db, hook["id"])
    assert delivery["status"] == "pending"  # held, not lost: re-enabling resumes it
    receiver.answer = lambda got: web.Response(status=200)
    resp = await hub.patch(f"/api/webhooks/{hook['id']}", json={"enabled": True})
    assert (await resp.json())["failing_since"] is None
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="resumed after re-enable")


async def test_a_success_resets_the_failure_clock(hub, receiver, db):
    hook = await register(hub, receiver.url)
    # Failing until the test has seen the receiver marked failing: answering 500 once and then
    # 200 let a quick retry succeed between two polls (seen under load), and "failing" was never seen.
    receiver.answer = lambda got: web.Response(status=500)
    await finish_batch(hub)
    await eventually(lambda: _webhook_if(hub, hook["id"], lambda w: w["failing_since"]), what="failing")
    receiver.answer = lambda got: web.Response(status=200)
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="delivered")
    shown = await (await hub.get(f"/api/webhooks/{hook['id']}")).json()
    assert shown["failing_since"] is None and shown["enabled"]


async def _webhook_if(hub: TestClient, webhook_id: str, predicate: Any) -> dict[str, Any] | None:
    shown: dict[str, Any] = await (await hub.get(f"/api/webhooks/{webhook_id}")).json()
    return shown if predicate(shown) else None


async def test_shutdown_finishes_an_attempt_in_flight(aiohttp_client, fast_settings, aiohttp_server, db):
    receiver = Receiver()
    arrived = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        receiver.received.append(Received(await request.read(), dict(request.headers)))
        arrived.set()
        await asyncio.sleep(0.5)  # the receiver's own pace, not a wait for a condition
        return web.Response(status=200, text="slow but fine")

    app = web.Application()
    app.router.add_post("/hook", slow)
    server = await aiohttp_server(app)
    hub = await aiohttp_client(create_app(fast_settings))
    hook = await register(hub, str(server.make_url("/hook")))
    await finish_batch(hub)
    await asyncio.wait_for(arrived.wait(), 20)
    await hub.close()  # runs the app's cleanup: the dispatcher stops while the attempt is open
    (delivery,) = deliveries_of(db, hook["id"])
    assert delivery["status"] == "succeeded"
    assert [a["response_body"] for a in attempts_of(db, delivery["delivery_id"])] == ["slow but fine"]


async def test_two_nodes_on_one_database_deliver_each_event_exactly_once(aiohttp_client, fast_settings, receiver, db):
    node_settings = replace_settings(fast_settings, webhook_poll_interval=0.01)
    first = await aiohttp_client(create_app(node_settings))
    second = await aiohttp_client(create_app(node_settings))
    hooks = [await register(first, receiver.url + f"/{i}") for i in range(3)]
    answers = iter([500] * 4 + [200] * 1000)  # a few retries in the mix
    receiver.answer = lambda got: web.Response(status=next(answers))
    batches = await asyncio.gather(*(finish_batch(node) for node in (first, second) * 4))
    assert len(set(batches)) == 8

    async def all_delivered() -> bool:
        return all([await delivery_status(db, h["id"], "succeeded", 8) for h in hooks])

    await eventually(all_delivered, what="24 deliveries succeeded")
    deliveries = [d for h in hooks for d in deliveries_of(db, h["id"])]
    assert len(deliveries) == 24
    attempts = [a for d in deliveries for a in attempts_of(db, d["delivery_id"])]
    assert len(receiver.received) == len(attempts) == 24 + 4  # every request was one recorded attempt
    assert sorted(set(receiver.ids())) == sorted(d["delivery_id"] for d in deliveries)


async def test_a_receiver_slower_than_the_timeout_is_retried(aiohttp_client, fast_settings, aiohttp_server, db):
    # The attempts metric is the process's: the receivers of the module's earlier tests go (with
    # their deliveries still due), so that every attempt counted below is this receiver's. Once, in
    # a full run at load 19, it counted a timeout more than this receiver's one.
    with db.cursor() as cur:
        cur.execute("DELETE FROM webhooks")
    release = asyncio.Event()
    calls: list[Received] = []

    async def slow_first(request: web.Request) -> web.StreamResponse:
        calls.append(Received(await request.read(), {k.lower(): v for k, v in request.headers.items()}))
        if len(calls) == 1:
            await release.wait()  # answers only when the test ends
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", slow_first)
    server = await aiohttp_server(app)
    hub = await aiohttp_client(create_app(replace_settings(fast_settings, webhook_timeout=0.3)))
    hook = await register(hub, str(server.make_url("/hook")))
    timeouts_before = attempts_metric("timeout")
    try:
        await finish_batch(hub)
        (delivery,) = await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="second attempt")
    finally:
        release.set()
    first, second = attempts_of(db, delivery["delivery_id"])
    assert first["error"] == "timed out after 0.3 s" and first["response_status"] is None
    assert 250 <= first["duration_ms"] < 2000
    assert second["response_status"] == 200
    assert attempts_metric("timeout") - timeouts_before == 1


async def test_deleting_a_receiver_during_an_attempt_is_quietly_fine(hub, aiohttp_server, db, caplog):
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await release.wait()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", held)
    server = await aiohttp_server(app)
    hook = await register(hub, str(server.make_url("/hook")))
    delivered_before = attempts_metric("delivered")
    await finish_batch(hub)
    await asyncio.wait_for(arrived.wait(), 20)
    assert (await hub.delete(f"/api/webhooks/{hook['id']}")).status == 204
    release.set()

    async def attempt_over() -> bool:
        return attempts_metric("delivered") > delivered_before

    await eventually(attempt_over, what="the attempt's end handled")
    assert (
        rows(
            db,
            "SELECT * FROM webhook_attempts a JOIN webhook_deliveries d USING (delivery_id) WHERE d.webhook_id = %s",
            hook["id"],
        )
        == []
    )
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


# The tables ``TRUNCATE job_batches CASCADE`` empties: those with a foreign key to it, and to
# those, and so on.
TRUNCATE_REACHES = """
    WITH RECURSIVE reached (rel) AS (
        SELECT 'job_batches'::regclass
        UNION
        SELECT c.conrelid::regclass FROM pg_constraint c JOIN reached r ON c.confrelid = r.rel WHERE c.contype = 'f'
    )
    SELECT string_agg(rel::text, ', ') FROM reached
"""


async def test_the_idle_dispatcher_never_holds_a_lock_across_its_event_loop(aiohttp_client, fast_settings, db):
    # Test code (and any blocking call) may hold the event loop while it takes a heavy lock,
    # e.g. TRUNCATE job_batches CASCADE, which reaches the outbox. If a poll held its lock
    # between statements, the loop could never finish that poll: a deadlock PostgreSQL cannot
    # see. A lock_timeout turns such a hang into an error here. The locks are TRUNCATE's
    # (ACCESS EXCLUSIVE on every table it reaches), taken with LOCK TABLE: the same conflicts,
    # without a TRUNCATE's new files (about 10 ms of PostgreSQL CPU each, 200 times).
    await aiohttp_client(create_app(replace_settings(fast_settings, webhook_poll_interval=0.001)))
    with db.cursor() as cur:
        cur.execute(TRUNCATE_REACHES)
        (tables,) = cur.fetchone()
        assert "webhook_deliveries" in tables.split(", ")  # the outbox the dispatcher polls
        cur.execute("SET lock_timeout = '3s'")
        for _ in range(200):
            await asyncio.sleep(0.002)  # let the dispatcher be in the middle of a poll
            cur.execute(f"BEGIN; LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE; COMMIT")
        cur.execute("RESET lock_timeout")


async def test_a_batch_ending_wakes_the_dispatcher_through_notify(aiohttp_client, fast_settings, receiver, db):
    """With a poll interval of a minute, only the NOTIFY of the job that ended the batch can
    explain a delivery within seconds."""
    client = await aiohttp_client(create_app(replace_settings(fast_settings, webhook_poll_interval=60.0)))
    hook = await register(client, receiver.url)
    await finish_batch(client)
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), timeout=10, what="delivered at once")
