"""Durability across real server processes: a `collector-hub serve` killed with SIGKILL in the
middle of a retry schedule, or in the middle of an attempt, and a new one started on the same
database delivers what was pending, with the same delivery id and the same bytes."""

from __future__ import annotations

import asyncio
import json
import signal
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.conditions import eventually
from tests.support.processes import clean_environment, collector_hub_command, free_port
from tests.support.webhook_receivers import Received, start_receiver
from tests.support.webhooks import attempts_of, deliveries_of, delivery_status


@asynccontextmanager
async def serving(
    database_url: str, tmp_path: Path, **env: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A real server process (API only) on the test database, with short webhook settings."""
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    settings = {
        "COLLECTOR_HUB_DATABASE_URL": database_url,
        "COLLECTOR_HUB_DATA_DIR": str(tmp_path / "data"),
        "COLLECTOR_HUB_RUN_COLLECTORS": "0",
        "COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE": "1",
        "COLLECTOR_HUB_WEBHOOK_POLL_INTERVAL": "0.1",
        **env,
    }
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *collector_hub_command(),
            "serve",
            "--port",
            str(port),
            env=clean_environment(**settings),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                assert proc.returncode is None, log_path.read_text()
                try:
                    async with http.get(f"{url}/readyz") as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(ready, timeout=60, what="the server answers /readyz")
        yield url, proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 30)


async def kill(proc: Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 30)


async def call(method: str, url: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()


async def end_a_batch(url: str) -> str:
    created = await call("POST", f"{url}/api/collectors/run", {"collectors": ["demo"]})
    job_id = created["collectors"][0]["job_id"]
    await call("POST", f"{url}/api/collectors/runs/job/{job_id}/progress", {"status": "completed"})
    return str(created["batch_id"])


def status_answer(status: Callable[[], int]) -> Callable[[Received], web.StreamResponse]:
    return lambda got: web.Response(status=status())


async def test_a_server_killed_mid_schedule_is_replaced_and_the_delivery_still_arrives(
    aiohttp_server, database_url, db, tmp_path
):
    receiver = await start_receiver(aiohttp_server)
    receiver_status = {"now": 500}
    receiver.answer = status_answer(lambda: receiver_status["now"])
    schedule = {"COLLECTOR_HUB_WEBHOOK_RETRY_SCHEDULE": "1.5,1.5,1.5,1.5"}
    async with serving(database_url, tmp_path, **schedule) as (url, proc):
        hook = await call("POST", f"{url}/api/webhooks", {"url": receiver.url, "events": ["batch.completed"]})
        batch_id = await end_a_batch(url)

        async def failed_once() -> bool:
            return any(len(attempts_of(db, d["delivery_id"])) >= 1 for d in deliveries_of(db, hook["id"]))

        await eventually(failed_once, what="a first failed attempt")
        await kill(proc)
    (pending,) = deliveries_of(db, hook["id"])
    assert pending["status"] == "pending"
    attempts_before = len(attempts_of(db, pending["delivery_id"]))
    receiver_status["now"] = 200

    async with serving(database_url, tmp_path, **schedule):
        (done,) = await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="delivered")
    attempts = attempts_of(db, done["delivery_id"])
    assert [a["attempt_number"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert len(attempts) == attempts_before + 1 and attempts[-1]["response_status"] == 200
    assert receiver.ids() == [done["delivery_id"]] * len(attempts)  # one request per recorded attempt
    assert {r.body for r in receiver.received} == {bytes(done["body"])}
    assert json.loads(receiver.received[-1].body)["batch_id"] == batch_id


async def test_a_server_killed_during_an_attempt_is_retried_by_the_next_one(aiohttp_server, database_url, db, tmp_path):
    arrived, release = asyncio.Event(), asyncio.Event()
    received: list[Received] = []

    async def first_hangs(request: web.Request) -> web.StreamResponse:
        received.append(Received(await request.read(), {k.lower(): v for k, v in request.headers.items()}))
        if len(received) == 1:
            arrived.set()
            await release.wait()  # no answer in time: the server is killed meanwhile
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", first_hangs)
    server = await aiohttp_server(app)
    # A short timeout gives a short lease (2 x timeout + 5 s) after which another node may retry.
    short = {"COLLECTOR_HUB_WEBHOOK_TIMEOUT": "1", "COLLECTOR_HUB_WEBHOOK_RETRY_SCHEDULE": "0.5"}
    async with serving(database_url, tmp_path, **short) as (url, proc):
        hook = await call(
            "POST", f"{url}/api/webhooks", {"url": str(server.make_url("/hook")), "events": ["batch.completed"]}
        )
        await end_a_batch(url)
        await asyncio.wait_for(arrived.wait(), 30)
        await kill(proc)  # mid-attempt: nothing was recorded
        release.set()
    (claimed,) = deliveries_of(db, hook["id"])
    assert claimed["status"] == "pending" and claimed["claim_token"] is not None
    assert attempts_of(db, claimed["delivery_id"]) == []

    async with serving(database_url, tmp_path, **short):
        (done,) = await eventually(
            lambda: delivery_status(db, hook["id"], "succeeded"), timeout=30, what="retried after the lease"
        )
    assert [r.headers["webhook-id"] for r in received] == [done["delivery_id"]] * 2
    assert received[0].body == received[1].body == bytes(done["body"])
    # The lost attempt kept its number; the retry is attempt 2.
    assert [a["attempt_number"] for a in attempts_of(db, done["delivery_id"])] == [2]
