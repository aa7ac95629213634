"""Job logs captured by a real runner from a real collector process: every line with its
stream, progress lines marked, secrets redacted, long lines cut, capped to the newest lines
and bytes, stored in batches, readable while the job runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from collectors.contract import MAX_LOG_LINE_BYTES, REDACTED
from server.app import create_app
from server.db.database import create_pool
from server.joblogs import store as logs
from server.joblogs.writer import cut_line, redact, secret_values
from server.runner import housekeeping
from server.runner.housekeeping import Housekeeping
from server.runner.protocol import CappedLineSplitter
from tests.support.conditions import eventually
from tests.support.job_logs import TOKEN, chatty
from tests.support.settings import replace_settings


@pytest.fixture(autouse=True)
def empty(db):
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches")


@pytest.fixture
def chatty_settings(settings, tmp_path):
    return chatty(settings, tmp_path)


async def run_chatty(client) -> str:
    resp = await client.post("/api/collectors/run", json={"collectors": ["chatty"]})
    assert resp.status == 201
    return (await resp.json())["collectors"][0]["job_id"]


async def read_logs(client, job_id: str, after: int = 0, limit: int = 5000) -> dict[str, Any]:
    resp = await client.get(f"/api/collectors/runs/job/{job_id}/logs?after={after}&limit={limit}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_run_is_logged_line_by_line_redacted_cut_and_readable_while_it_runs(
    aiohttp_client, chatty_settings, tmp_path, db
):
    client = await aiohttp_client(create_app(chatty_settings))
    job_id = await run_chatty(client)

    async def half_way():
        body = await read_logs(client, job_id)
        return body if len(body["lines"]) >= 1500 else None

    running = await eventually(half_way, what="half the lines, while the collector waits")
    assert running["status"] == "running" and running["complete"] is False
    (tmp_path / "go").touch()

    async def ended():
        body = await read_logs(client, job_id, limit=5000)
        return body if body["complete"] else None

    body = await ended() or await eventually(ended, what="the job to end with every line stored")
    lines = body["lines"]
    assert [line["line"] for line in lines] == list(range(1, len(lines) + 1))  # no gap, no repeat
    assert lines[0]["stream"] == "system" and lines[0]["text"].startswith("Runner ")  # the runner's start note
    assert lines[1]["text"] == f"connecting with token {REDACTED} to the vendor"
    assert TOKEN not in str(body)
    assert lines[2]["text"].startswith("x" * 100) and lines[2]["text"].endswith(
        f"… [cut {20_000 - MAX_LOG_LINE_BYTES} bytes]"
    )
    printed = lines[3:-1]
    assert len(printed) == 3000
    # stdout and stderr are read side by side, so only each stream's own order is certain.
    by_text = {line["text"]: line for line in printed}
    progress = [line for line in printed if line["progress"]]
    assert [line["text"] for line in progress] == [f"@progress {min(99, n // 30)} Line {n}" for n in (1000, 2000, 3000)]
    assert {line["stream"] for line in progress} == {"stdout"}
    stderr = [line["text"] for line in printed if line["stream"] == "stderr"]
    assert stderr == [f"warning at line {n}" for n in range(100, 3001, 100) if n % 1000]
    stdout = [line["text"] for line in printed if line["stream"] == "stdout" and not line["progress"]]
    assert stdout == [f"line {n}" for n in range(1, 3001) if n % 100]
    assert by_text["line 1"]["progress"] is False
    assert lines[-1]["stream"] == "system" and "exited with code 3" in lines[-1]["text"]
    job = await (await client.get(f"/api/collectors/runs/job/{job_id}")).json()
    assert job["status"] == "failed" and TOKEN not in job["error"]
    with db.cursor() as cur:  # batches, not a statement per line: far fewer NOTIFYs than lines
        cur.execute("SELECT count(*) FROM job_logs WHERE job_id = %s", (job_id,))
        assert cur.fetchone()[0] == len(lines)


async def test_the_newest_lines_are_kept_under_the_cap(aiohttp_client, chatty_settings, tmp_path):
    (tmp_path / "go").touch()
    client = await aiohttp_client(create_app(replace_settings(chatty_settings, job_log_max_lines=500)))
    job_id = await run_chatty(client)
    body = await eventually(lambda: _complete(client, job_id), what="the job to end", timeout=60)
    assert len(body["lines"]) == 500
    # The start note and 2 lines before the numbered ones, 3000 of them, the end note: 3004 in all.
    assert body["dropped_lines"] == 3004 - 500 and body["lines"][0]["line"] == 2505
    assert [line["text"] for line in body["lines"] if line["stream"] == "stdout"][-2:] == [
        "line 2999",
        "@progress 99 Line 3000",
    ]


async def test_the_newest_bytes_are_kept_under_the_cap(aiohttp_client, settings, tmp_path):
    (tmp_path / "go").touch()
    client2 = await aiohttp_client(create_app(chatty(settings, tmp_path, 20_000, job_log_max_bytes=64 * 1024)))
    job_id = await run_chatty(client2)
    body = await eventually(lambda: _complete(client2, job_id), what="the job to end", timeout=60)
    kept = sum(len(line["text"].encode()) for line in body["lines"])
    assert 60 * 1024 < kept <= 64 * 1024 and body["dropped_lines"] > 10_000
    assert body["lines"][-1]["stream"] == "system"


async def _complete(client, job_id):
    """Every page of the log once the job has ended and its last line is stored."""
    body = await read_logs(client, job_id)
    lines = body["lines"]
    while not body["complete"] and body["status"] in ("completed", "failed", "cancelled"):
        body = await read_logs(client, job_id, after=body["next_after"])
        lines += body["lines"]
    return {**body, "lines": lines} if body["complete"] else None


def test_secret_values_and_redaction():
    env = {"NINJA_CLIENT_SECRET": "abcd-secret", "API_KEY": "key-1234", "Password": "hunter22", "DEBUG_KEY": "1"}
    env |= {"REGION": "eu-west-secret-not"}
    secrets = secret_values(env)
    assert set(secrets) == {"abcd-secret", "key-1234", "hunter22"}  # "1" is too short to redact
    assert redact("id abcd-secret pw hunter22 region eu", secrets) == f"id {REDACTED} pw {REDACTED} region eu"
    assert cut_line("é" * MAX_LOG_LINE_BYTES, 0).endswith(f"… [cut {MAX_LOG_LINE_BYTES} bytes]")
    assert cut_line("short", 5) == "short… [cut 5 bytes]"


def test_the_capped_splitter_keeps_a_prefix_and_counts_the_rest():
    splitter = CappedLineSplitter(10)
    assert splitter.feed(b"0123456789abcdef\nshort\r\nhal") == [("0123456789", 6), ("short", 0)]
    assert splitter.feed(b"f") == []
    assert splitter.finish() == [("half", 0)]


async def test_retention_removes_old_lines_in_batches(database_url, settings, db, monkeypatch):
    with db.cursor() as cur:
        cur.execute("INSERT INTO job_batches (batch_id) VALUES ('bc_00000555')")
        cur.execute(
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status)"
            " VALUES ('de_00000555', 'bc_00000555', 'demo', 'demo-collector', 'completed')"
        )
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
        cur.execute(
            "INSERT INTO job_logs (job_id, line_no, stream, logged_at, text)"
            " SELECT 'de_00000555', n, 'stdout', %s + make_interval(secs => n), 'old' FROM generate_series(1, 250) n",
            (old,),
        )
        cur.execute(
            "INSERT INTO job_logs (job_id, line_no, stream, logged_at, text)"
            " SELECT 'de_00000555', n, 'stdout', now(), 'new' FROM generate_series(251, 260) n"
        )
    monkeypatch.setattr(housekeeping, "RETENTION_BATCH", 100)
    deletes = []
    original = logs.delete_old_lines

    async def counting(*args):
        deleted = await original(*args)
        deletes.append(deleted)
        return deleted

    monkeypatch.setattr(logs, "delete_old_lines", counting)
    async with create_pool(database_url, 1, 2) as pool:
        keeper = Housekeeping(pool, replace_settings(settings, log_retention_days=30.0))
        keeper.start()
        try:
            await eventually(lambda: asyncio.sleep(0, sum(deletes) == 250), what="retention")
        finally:
            await keeper.stop()
    assert deletes == [100, 100, 50]  # batches, one after the other while full
    with db.cursor() as cur:
        cur.execute("SELECT min(line_no), count(*) FROM job_logs WHERE job_id = 'de_00000555'")
        assert cur.fetchone() == (251, 10)


async def test_the_log_is_tailed_live_over_sse_and_websocket(aiohttp_client, chatty_settings, tmp_path):
    """While the collector runs: SSE and a WebSocket `logs` subscription get the stored lines,
    then new ones as they are stored, then the end; a reconnect resumes by line number."""
    client = await aiohttp_client(create_app(chatty_settings))
    job_id = await run_chatty(client)
    await eventually(lambda: _has_lines(client, job_id, 1000), what="the first lines")

    sse = await client.get(f"/api/collectors/runs/job/{job_id}/logs/events")
    assert sse.status == 200 and sse.headers["Content-Type"].startswith("text/event-stream")
    ws = await client.ws_connect("/api/ws")
    await ws.send_json({"op": "subscribe", "logs": job_id, "after": 0})
    assert await ws.receive_json(timeout=10) == {"type": "subscribed", "logs": job_id}

    sse_lines: list[int] = []
    buffer = b""

    async def read_sse_until(predicate):
        nonlocal buffer
        while not predicate():
            chunk = await asyncio.wait_for(sse.content.readany(), 10)
            if not chunk:
                return
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                fields = dict(line.split(b": ", 1) for line in frame.split(b"\n") if b": " in line)
                if fields.get(b"event") == b"log":
                    assert int(fields[b"id"]) == json_line(fields[b"data"])["line"]
                    sse_lines.append(int(fields[b"id"]))
                elif fields.get(b"event") == b"end":
                    sse_lines.append(-1)

    await read_sse_until(lambda: len(sse_lines) >= 1000)  # the stored lines, while the job waits
    (tmp_path / "go").touch()  # now the collector prints the rest: they arrive live
    await read_sse_until(lambda: sse_lines and sse_lines[-1] == -1)
    assert sse_lines[-1] == -1 and sse_lines[:-1] == list(range(1, len(sse_lines)))
    assert len(sse_lines) - 1 == 3004

    ws_lines: list[int] = []
    while True:
        message = await ws.receive_json(timeout=10)
        if message["type"] == "logs_end":
            assert message == {"type": "logs_end", "job_id": job_id, "status": "failed"}
            break
        assert message["type"] == "logs"
        ws_lines += [line["line"] for line in message["lines"]]
    assert ws_lines == list(range(1, 3005))
    await ws.close()

    resumed = await client.get(f"/api/collectors/runs/job/{job_id}/logs/events", headers={"Last-Event-ID": "3001"})
    text = await resumed.text()
    assert [line for line in text.split("\n") if line.startswith("id: ")] == ["id: 3002", "id: 3003", "id: 3004"]
    assert "event: end" in text
    done = await client.get(f"/api/collectors/runs/job/{job_id}/logs/events", headers={"Last-Event-ID": "3004"})
    assert done.status == 204


def json_line(data: bytes) -> dict[str, Any]:
    return json.loads(data)


async def _has_lines(client, job_id, count):
    body = await read_logs(client, job_id, limit=count)
    return len(body["lines"]) >= count


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"op": "subscribe", "logs": "nope"}, "Malformed job id"),
        ({"op": "subscribe", "logs": "zz_00000000", "after": -1}, "after must be"),
        ({"op": "subscribe", "logs": "zz_00000000", "since": 3}, "resumes with after"),
        ({"op": "subscribe", "job_id": "zz_00000000", "after": 3}, "after goes with logs"),
        ({"op": "subscribe", "logs": "zz_00000000"}, "Job not found"),
    ],
)
async def test_bad_logs_subscriptions_get_an_error(client, message, words):
    ws = await client.ws_connect("/api/ws")
    await ws.send_json(message)
    while True:
        reply = await ws.receive_json(timeout=10)
        if reply["type"] == "error":
            break
    assert words in reply["error"]
    await ws.close()


async def test_sse_log_stream_refusals(client):
    assert (await client.get("/api/collectors/runs/job/zz_00000000/logs/events")).status == 404
    resp = await client.get("/api/collectors/runs/job/zz_00000000/logs/events", headers={"Last-Event-ID": "x"})
    assert resp.status == 400 and "Last-Event-ID" in (await resp.json())["error"]


async def test_a_collector_printing_100000_lines_keeps_its_last_10000_tailed_live(aiohttp_client, settings, tmp_path):
    """The issue's check: 100,000 lines run to completion; the newest 10,000 are readable through
    the API, and an SSE tail opened while it ran saw lines as they came and then the end."""
    client = await aiohttp_client(create_app(chatty(settings, tmp_path, 100_000)))
    job_id = await run_chatty(client)
    await eventually(lambda: _has_lines(client, job_id, 100), what="the first lines")
    sse = await client.get(f"/api/collectors/runs/job/{job_id}/logs/events")
    assert sse.status == 200
    (tmp_path / "go").touch()
    seen, last, ended, buffer = 0, 0, False, b""
    while not ended:
        chunk = await asyncio.wait_for(sse.content.readany(), 30)
        assert chunk, "the stream closed before its end event"
        buffer += chunk
        *frames, buffer = buffer.split(b"\n\n")
        for frame in frames:
            if frame.startswith(b"id: "):
                line = int(frame[4 : frame.index(b"\n")])
                assert line > last  # in order, never twice (lines dropped by the cap may be skipped)
                seen, last = seen + 1, line
            ended = ended or b"event: end" in frame
    # The runner's start note, 2 lines, the 100,000 numbered ones, the runner's end note.
    assert last == 100_004 and seen >= 10_000
    body = await _complete(client, job_id)
    assert body is not None and len(body["lines"]) == 10_000
    assert body["dropped_lines"] == 100_004 - 10_000
    assert [line["line"] for line in body["lines"]] == list(range(90_005, 100_005))
