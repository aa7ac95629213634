"""Data flows one way (database -> listener -> hub -> transports): the runner and the webhook
dispatcher register their wake-ups with the hub; nothing in server/realtime/ reaches back."""

from __future__ import annotations

import ast
from pathlib import Path

from server.realtime.keys import HUB
from server.realtime.notify import Notification, parse_log_wake_up, parse_notification
from tests.support.conditions import eventually
from tests.support.runs import set_job, trigger

REALTIME = Path(__file__).resolve().parent.parent / "server" / "realtime"


def test_realtime_never_imports_the_runner_or_the_webhooks():
    reaching_back = []
    for path in sorted(REALTIME.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Name) and node.id in ("RUNNER", "WEBHOOK_DISPATCHER"):
                names = [node.id]
            reaching_back += [
                f"{path.name}:{getattr(node, 'lineno', '?')} {name}"
                for name in names
                if name.startswith(("server.runner", "server.webhooks")) or name in ("RUNNER", "WEBHOOK_DISPATCHER")
            ]
    assert reaching_back == []


async def test_notify_fires_the_registered_wake_ups_queued_then_ended(client, db):
    queued: list[str] = []
    ended: list[str] = []
    wake_ups = client.app[HUB].wake_ups
    wake_ups.when_job_queued(lambda: queued.append("queued"))
    wake_ups.when_job_ended(lambda: ended.append("ended"))

    created = await trigger(client)
    job_id = created["collectors"][0]["job_id"]

    async def woke_queued() -> bool:
        return bool(queued)

    await eventually(woke_queued, what="the job-queued wake-up")
    assert ended == []
    await set_job(db, job_id, status="running", progress_percent=50)
    await set_job(db, job_id, status="completed", progress_percent=100)

    async def woke_ended() -> bool:
        return bool(ended)

    await eventually(woke_ended, what="the job-ended wake-up")
    assert queued == ["queued"]


async def test_a_failing_wake_up_stops_neither_the_others_nor_the_push(client, db):
    woken: list[str] = []

    def broken() -> None:
        raise RuntimeError("broken wake-up")

    wake_ups = client.app[HUB].wake_ups
    wake_ups.when_job_ended(broken)
    wake_ups.when_job_ended(lambda: woken.append("ended"))
    created = await trigger(client)
    path = f"/api/collectors/runs/batch/{created['batch_id']}"
    etag = (await client.get(path)).headers["ETag"]
    await set_job(db, created["collectors"][0]["job_id"], status="failed")

    async def woke() -> bool:
        return bool(woken)

    await eventually(woke, what="the second job-ended wake-up")
    resp = await client.get(path, params={"wait": "10"}, headers={"If-None-Match": etag})
    assert resp.status == 200
    assert (await resp.json())["status"] == "failed"


def test_a_payload_is_parsed_whole_or_ignored():
    """The trigger's payloads (sql/002_notify.sql, sql/006_run_operations.sql) are one JSON
    object each; anything more, or anything else, is ignored, never half read."""
    job = '{"kind" : "job", "job_id" : "de_00000001", "batch_id" : "bc_00000001", "seq" : 42, "status" : "failed"}'
    assert parse_notification(job) == Notification("bc_00000001", 42, "job", "de_00000001", "failed")
    assert parse_notification('{"batch_id" : "bc_00000001", "seq" : 7}') == Notification("bc_00000001", 7)
    for malformed in (job + "x", job + " {}", "[1, 2]", '"bc_00000001"', "", '{"seq" : 1}', job[:-1]):
        assert parse_notification(malformed) is None, malformed

    # A job's change is read without json when it has the trigger's exact layout: anything else
    # in it (an escape, a seq json would not read) is json's to read, or to refuse.
    def job_with(job_id: str = "de_00000001", seq: str = "42") -> str:
        batch = '"batch_id" : "bc_00000001"'
        return f'{{"kind" : "job", "job_id" : "{job_id}", {batch}, "seq" : {seq}, "status" : "failed"}}'

    assert parse_notification(job_with(r"de_0000000\u0031")) == Notification(
        "bc_00000001", 42, "job", "de_00000001", "failed"
    )
    assert parse_notification(job_with(seq="0")) == Notification("bc_00000001", 0, "job", "de_00000001", "failed")
    assert parse_notification(job_with(seq="-1 ")) == Notification("bc_00000001", -1, "job", "de_00000001", "failed")
    for malformed in (job_with(seq="4_2"), job_with(seq="\u0664\u0662"), job_with(seq="042")):
        assert parse_notification(malformed) is None, malformed
    # As many quotes as the trigger's layout, in another layout (the keys in another order, other
    # spacing): json reads it, never the cut pieces.
    failed = Notification("bc_00000001", 42, "job", "de_00000001", "failed")
    reordered = (
        '{"job_id" : "de_00000001", "kind" : "job", "batch_id" : "bc_00000001", "seq" : 42, "status" : "failed"}'
    )
    for other_layout in (reordered, job.replace(" : ", ":"), job.replace(", ", ",\n")):
        assert len(other_layout.split('"')) == len(job.split('"'))
        assert parse_notification(other_layout) == failed, other_layout
    log_payload = '{"kind" : "log", "job_id" : "de_00000001"}'
    assert parse_log_wake_up(log_payload) == "de_00000001"
    assert parse_log_wake_up(log_payload + "}") is None
    assert parse_log_wake_up('{"kind" : "log", "job_id" : 1}') is None
