"""``collector-hub serve`` as an operator runs it: HTTPS/WSS with a certificate made here,
graceful SIGTERM with clients connected and a collector running, and no secret in its logs."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import TypeVar

import aiohttp
import jwt
import psycopg2
import pytest

from server.security.api_keys import create_key
from tests.support.collectors_file import program, write_collectors_file
from tests.support.conditions import eventually
from tests.support.processes import ServeProcess, free_port, process_alive, read_pids, serving
from tests.support.tls import self_signed_certificate

ADMIN_KEY = "operations-admin-key-0123456789abcdef"
JWT_SECRET = "operations-jwt-secret-at-least-32-bytes-long"


def stored_read_key(database_url: str, name: str) -> str:
    """A stored key, made by what ``collector-hub keys create`` calls (the command itself is
    tested in tests/test_auth.py): here only its secret matters, not a second CLI start."""
    conn = psycopg2.connect(database_url)
    try:
        return create_key(conn, name, "read")[0]
    finally:
        conn.close()


def base_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "COLLECTOR_HUB_DATABASE_URL": database_url,
        "COLLECTOR_HUB_DATA_DIR": str(tmp_path),
        "COLLECTOR_HUB_RUN_COLLECTORS": "0",
        "COLLECTOR_HUB_API_KEYS": f"admin:{ADMIN_KEY}",
        **extra,
    }


async def test_https_and_wss_round_trip_with_a_generated_certificate(database_url, tmp_path: Path):
    cert, key = self_signed_certificate(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    server = ServeProcess(
        base_env(database_url, tmp_path), tmp_path / "serve.log", "--tls-cert", str(cert), "--tls-key", str(key)
    )
    server.scheme = "https"
    try:
        await server.start(ssl=trust)
        async with aiohttp.ClientSession(headers={"X-API-Key": ADMIN_KEY}) as session:
            async with session.post(
                server.url + "/api/collectors/run", json={"collectors": ["demo"]}, ssl=trust
            ) as resp:
                assert resp.status == 201
                batch_id = (await resp.json())["batch_id"]
            async with session.get(f"{server.url}/api/collectors/runs/batch/{batch_id}", ssl=trust) as resp:
                assert resp.status == 200 and (await resp.json())["batch_id"] == batch_id
            # Not a certificate the client trusts: refused by the client, so TLS is really in use.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(server.url + "/healthz")
            # Plain HTTP to the TLS port gets no HTTP answer.
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{server.port}/healthz") as resp:
                    await resp.read()
                    assert resp.status != 200
            # WSS: the fast path that sends on a plain socket must leave a TLS one to its transport,
            # so a change pushed after the subscription arrives as a readable message.
            async with session.ws_connect(f"wss://127.0.0.1:{server.port}/api/ws", ssl=trust) as ws:
                await ws.send_json({"op": "subscribe", "batch_id": batch_id})
                assert (await ws.receive_json(timeout=15))["type"] == "subscribed"
                assert (await ws.receive_json(timeout=15))["data"]["status"] == "queued"
                async with session.post(f"{server.url}/api/collectors/runs/batch/{batch_id}/cancel", ssl=trust) as resp:
                    assert resp.status == 200, await resp.text()
                while (pushed := await ws.receive_json(timeout=15))["type"] != "batch":
                    pass
                assert pushed["data"]["status"] == "cancelled"
        assert "serving on https://" in server.log()
    finally:
        if server.process is not None:
            assert await server.stop() == 0


def test_tls_settings_go_together_and_bad_files_are_named(tmp_path: Path, database_url):
    cert, _ = self_signed_certificate(tmp_path)
    for args, complaint in (
        (["--tls-cert", str(cert)], "go together"),
        (["--tls-cert", str(cert), "--tls-key", str(cert)], "cannot load"),
        (["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(cert)], "must name an existing file"),
    ):
        port = str(free_port())  # not the default: a `collector-hub serve` may hold it while the tests run
        result = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--database-url", database_url, "--port", port, *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert complaint in result.stderr and "Traceback" not in result.stderr


async def test_sigterm_with_clients_connected_and_a_collector_running(database_url, tmp_path: Path, db):
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {"hang": {"command": program("hang"), "env": {"PID_FILE": str(tmp_path / "hang.pids")}}},
    )
    env = base_env(
        database_url,
        tmp_path,
        COLLECTOR_HUB_RUN_COLLECTORS="1",
        COLLECTOR_HUB_COLLECTORS_FILE=str(collectors),
        COLLECTOR_HUB_RUNNER_POLL_INTERVAL="0.1",
        COLLECTOR_HUB_CANCEL_GRACE_PERIOD="1",
        COLLECTOR_HUB_SHUTDOWN_TIMEOUT="3",
    )
    server = ServeProcess(env, tmp_path / "serve.log")
    await server.start()
    ws_closes: list[int | None] = []
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": ADMIN_KEY}) as session:
            async with session.post(server.url + "/api/collectors/run", json={"collectors": ["hang"]}) as resp:
                job_id = (await resp.json())["collectors"][0]["job_id"]
            pids = await eventually(lambda: _value(read_pids(tmp_path / "hang.pids")), what="the collector to start")
            # An idle keep-alive connection, and the WebSocket when live push is there.
            async with session.get(server.url + "/healthz") as resp:
                assert resp.status == 200
            ws = None
            try:
                ws = await session.ws_connect(server.url + "/api/ws")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 404
            started = time.monotonic()
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            if ws is not None:
                async for _ in ws:
                    pass
                ws_closes.append(ws.close_code)
            # Wait for the exit without a second SIGTERM (a second one interrupts the cleanup).
            async with asyncio.timeout(30):
                code = await server.process.wait()
            elapsed = time.monotonic() - started
    finally:
        if server.process is not None and server.process.returncode is None:
            await server.stop(signal.SIGKILL)
    assert code == 0, server.log()
    # Bounded: shutdown timeout (3) + the collector's grace period (1) + margins.
    assert elapsed < 12, f"took {elapsed:.1f}s"
    assert all(close == 1001 for close in ws_closes)
    assert not any(process_alive(pid) for pid in pids)
    with db.cursor() as cur:
        cur.execute("SELECT status FROM job_runs WHERE job_id = %s", (job_id,))
        assert cur.fetchone() == ("queued",)  # handed back for another node's runner
    assert "Traceback" not in server.log()


T = TypeVar("T")


async def _value(value: T) -> T:
    return value


async def test_no_secret_reaches_the_logs_even_at_debug(database_url, tmp_path: Path):
    token = jwt.encode({"sub": "dash", "role": "read", "exp": int(time.time()) + 300}, JWT_SECRET)
    env = base_env(
        database_url,
        tmp_path,
        COLLECTOR_HUB_JWT_SECRET=JWT_SECRET,
        COLLECTOR_HUB_LOG_LEVEL="DEBUG",
        COLLECTOR_HUB_LOG_FORMAT="json",
    )
    stored_key = await asyncio.to_thread(stored_read_key, database_url, "log-test")
    secrets = [ADMIN_KEY, JWT_SECRET, token, stored_key, token.split(".")[2]]
    async with serving(env, tmp_path / "serve.log") as server, aiohttp.ClientSession() as session:
        for headers, path in (
            ({"X-API-Key": ADMIN_KEY, "X-Request-Id": "trace-me"}, "/api/collectors/runs/latest"),
            ({"Authorization": f"Bearer {token}"}, "/api/collectors/history"),
            ({"X-API-Key": stored_key}, "/metrics"),
            ({"X-API-Key": ADMIN_KEY + "x"}, "/api/collectors"),
            ({}, f"/api/collectors/runs/batch/bc_00000000/events?access_token={token}"),
            ({}, f"/api/ws?access_token={stored_key}"),
        ):
            async with session.get(server.url + path, headers=headers) as resp:
                await resp.read()
    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "collector_hub.access"]
    assert len(access) >= 6 and all(line["request_id"] for line in access)
    assert any(line["request_id"] == "trace-me" and line["status"] == 200 for line in access)
    assert any("access_token=REDACTED" in line["path"] for line in access)
    leaked = [secret[:12] + "..." for secret in secrets if secret in log]
    assert not leaked, f"secrets in the log: {leaked}"
