"""``collector-hub serve --loop auto|asyncio|uvloop`` (docs/DEPLOYMENT.md, event loops): the
server runs and pushes live on uvloop's loop, alone or as ``--workers``; asking for uvloop where
it is not installed stops the start with one clear line; auto takes uvloop when it is there."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from server.cli.event_loop import resolve_event_loop
from server.settings import SettingsError, load_settings
from tests.support.processes import ServeProcess, free_port
from tests.support.runs import set_job
from tests.support.sse_stream import SseStream


def serve_env(database_url: str, **more: str) -> dict[str, str]:
    return {
        "COLLECTOR_HUB_DATABASE_URL": database_url,
        "COLLECTOR_HUB_RUN_COLLECTORS": "0",
        "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "0",
        "COLLECTOR_HUB_SHUTDOWN_TIMEOUT": "2",
        "COLLECTOR_HUB_STREAM_HEARTBEAT": "2",
        **more,
    }


def without_uvloop(tmp_path: Path) -> str:
    """A PYTHONPATH on which ``import uvloop`` fails, as where the extra is not installed."""
    shadow = tmp_path / "no-uvloop" / "uvloop"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'uvloop' (hidden by the test)\")\n")
    return str(shadow.parent)


def test_the_loop_setting_is_checked_and_auto_is_uvloop_when_installed():
    assert load_settings({}).loop == "auto"
    assert load_settings({"COLLECTOR_HUB_LOOP": "UVLoop"}).loop == "uvloop"
    with pytest.raises(SettingsError, match="COLLECTOR_HUB_LOOP must be auto, asyncio or uvloop, got 'tokio'"):
        load_settings({"COLLECTOR_HUB_LOOP": "tokio"})
    assert [resolve_event_loop(name) for name in ("auto", "asyncio", "uvloop")] == ["uvloop", "asyncio", "uvloop"]


async def test_workers_on_uvloop_push_live_over_websocket_and_sse(database_url, db, tmp_path):
    server = ServeProcess(serve_env(database_url), tmp_path / "serve.log", "--workers", "2", "--loop", "uvloop")
    try:
        await server.start()
        async with aiohttp.ClientSession() as session:
            async with session.post(server.url + "/api/collectors/run", json={"collectors": ["demo"]}) as resp:
                created = await resp.json()
            batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
            sockets = [await session.ws_connect(server.url + "/api/ws") for _ in range(4)]
            streams = []
            for _ in range(4):
                streams.append(
                    SseStream(await session.get(f"{server.url}/api/collectors/runs/batch/{batch_id}/events"))
                )
            for ws in sockets:
                await ws.send_json({"op": "subscribe", "batch_id": batch_id})
            for sse in streams:
                await sse.event()
            await set_job(db, job_id, status="completed")
            for ws in sockets:
                while True:
                    body = json.loads((await ws.receive(timeout=15)).data)
                    if body.get("type") == "batch" and body["data"]["status"] == "completed":
                        break
                await ws.close()
            # The hub's heartbeat pings go out on the session's transport (uvloop's is no
            # asyncio.Transport: the session once kept none and never pinged).
            quiet = await session.ws_connect(server.url + "/api/ws", autoping=False)
            assert (await quiet.receive(timeout=10)).type is aiohttp.WSMsgType.PING
            await quiet.close()
            for sse in streams:
                await sse.events_until("completed")
                sse.close()
    finally:
        code = await server.stop(signal.SIGTERM)
    assert code == 0, server.log()
    assert server.log().count("on uvloop's event loop") == 2, server.log()  # each worker says so


async def serve_briefly(env: dict[str, str], *args: str) -> tuple[int | None, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", "--port", str(free_port()), *args,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_")}, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, (out + err).decode()


async def test_uvloop_asked_for_but_not_installed_is_one_line_and_exit_2(database_url, db, tmp_path):
    hidden = without_uvloop(tmp_path)
    for args in (["--loop", "uvloop"], ["--loop", "uvloop", "--workers", "2"]):
        code, text = await serve_briefly({**serve_env(database_url), "PYTHONPATH": hidden}, *args)
        assert code == 2, text
        assert text.strip() == (
            "collector-hub serve: error: --loop uvloop (COLLECTOR_HUB_LOOP): uvloop is not installed; install it "
            "with pip install 'collector-hub[uvloop]', or choose --loop asyncio"
        )
    code, text = await serve_briefly({**serve_env(database_url), "PYTHONPATH": hidden, "COLLECTOR_HUB_LOOP": "uvloop"})
    assert code == 2 and "uvloop is not installed" in text, text


async def test_auto_is_asyncio_where_uvloop_is_not_installed(database_url, tmp_path):
    env = serve_env(database_url, PYTHONPATH=without_uvloop(tmp_path))
    server = ServeProcess(env, tmp_path / "serve.log")
    try:
        await server.start()
    finally:
        code = await server.stop(signal.SIGTERM)
    assert code == 0, server.log()
    assert "on asyncio's event loop" in server.log(), server.log()
