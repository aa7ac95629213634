"""The command line around the runtime: `collector-hub run` against a live server, and a
standalone `collector-hub runner` process. Both as real subprocesses."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.settings import Settings
from tests.support.cli import base_url, cli
from tests.support.collectors_file import program, write_collectors_file
from tests.support.conditions import eventually
from tests.support.processes import free_port, process_alive, read_pids
from tests.support.settings import replace_settings


@pytest.fixture(autouse=True)
def empty_queue(db) -> None:  # type: ignore[no-untyped-def]
    with db.cursor() as cur:
        cur.execute("DELETE FROM job_batches")


@pytest.fixture
def collectors_file(tmp_path: Path) -> Path:
    return write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "demo": {
                "command": [sys.executable, "-m", "collectors.demo"],
                "env": {"DEMO_PAGES": "4", "DEMO_PAGE_SECONDS": "0.2"},
            },
            "slow": {
                "command": [sys.executable, "-m", "collectors.demo"],
                "env": {"DEMO_PAGES": "100", "DEMO_PAGE_SECONDS": "0.2"},
            },
            "hang": {"command": program("hang"), "env": {"PID_FILE": str(tmp_path / "hang.pids")}},
            "crash": {"command": program("crash")},
        },
    )


ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
def live_server(aiohttp_server, settings: Settings, collectors_file: Path) -> ServerFactory:  # type: ignore[no-untyped-def]
    async def start(**changes: Any) -> TestServer:
        defaults = {
            "run_collectors": True,
            "cancel_grace_period": 0.5,
            "collectors_file": collectors_file,
        }
        app_settings = replace_settings(settings, **{**defaults, **changes})
        server: TestServer = await aiohttp_server(create_app(app_settings))
        return server

    return start


async def test_run_waits_prints_progress_and_exits_0_when_completed(live_server: ServerFactory) -> None:
    server = await live_server()
    code, out, err = await cli("run", "demo", "--url", base_url(server), "--interval", "0.1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Batch bc_") and lines[0].endswith(")") and "queued: demo (de_" in lines[0]
    assert any("running" in line and "Processing page" in line for line in lines), out
    assert lines[-1].startswith("Batch bc_") and " completed" in lines[-1]


async def test_run_exits_1_when_the_batch_fails(live_server: ServerFactory) -> None:
    server = await live_server()
    # (Not ninja without credentials: a runner without them leaves ninja jobs to one that has them.)
    code, out, err = await cli("run", "crash", "demo", "--url", base_url(server), "--priority", "high")
    assert code == 1, (out, err)
    assert "Exited with code 3" in out
    assert "failed" in out.splitlines()[-1]


async def test_a_failed_jobs_traceback_is_printed_as_lines_with_its_indentation(
    live_server: ServerFactory, tmp_path: Path
) -> None:
    """A multi-line error used to come out as one long line (newlines squashed to spaces)."""
    script = tmp_path / "raises.py"
    script.write_text("def fetch():\n    raise RuntimeError('the vendor said no')\n\n\nfetch()\n")
    collectors = write_collectors_file(tmp_path / "raises.toml", {"raises": {"command": [sys.executable, str(script)]}})
    server = await live_server(collectors_file=collectors)
    code, out, err = await cli("run", "raises", "--url", base_url(server))
    assert code == 1, (out, err)
    lines = out.splitlines()
    start = lines.index("    error: Exited with code 1")
    assert lines[start + 1 : start + 8] == [
        "           Last lines of stderr:",
        "           Traceback (most recent call last):",
        f'             File "{script}", line 5, in <module>',
        "               fetch()",
        f'             File "{script}", line 2, in fetch',
        "               raise RuntimeError('the vendor said no')",
        "           RuntimeError: the vendor said no",
    ], out


async def test_run_exits_1_when_the_batch_is_cancelled(live_server: ServerFactory) -> None:
    server = await live_server()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "run",
        "slow",
        "--url",
        base_url(server),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        batch_id = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()[1]
        while "Processing page" not in (line := (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()):
            assert line, "the command ended before the job made progress"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base_url(server)}/api/collectors/runs/batch/{batch_id}/cancel") as response:
                assert response.status == 200
        rest, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1, err
    assert rest.decode().splitlines()[-1].startswith(f"Batch {batch_id} cancelled")


async def test_run_gives_up_after_its_timeout_with_exit_1(live_server: ServerFactory) -> None:
    server = await live_server(run_collectors=False)  # nothing will run the job
    code, out, _ = await cli("run", "demo", "--url", base_url(server), "--timeout", "0.5", "--interval", "0.1")
    assert code == 1
    assert out.splitlines()[-1].startswith("Gave up waiting after 0.5s; batch bc_")


async def test_run_with_no_wait_returns_at_once(live_server: ServerFactory) -> None:
    server = await live_server(run_collectors=False)
    code, out, _ = await cli("run", "demo", "--no-wait", "--url", base_url(server))
    assert code == 0
    assert out.startswith("Batch bc_") and len(out.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "complaint", "by_server"),
    [
        (["run", "nosuch"], "Unknown collector", True),
        (["run", "demo", "demo"], "the server refused the request (HTTP 400)", True),
        (["run", "demo", "--url", "ftp://example.com"], "--url must be an http:// or https:// URL", False),
        (["run", "demo", "--url", "http://127.0.0.1:99999"], "invalid port", False),
        (["run", "demo", "--priority", "urgent"], "invalid choice", False),
        (["run", "demo", "--interval", "0"], "--interval must be between 0.1 and 60 seconds", False),
        (["run", "demo", "--interval", "soon"], "invalid float value", False),
        (["run", "demo", "--timeout", "-1"], "--timeout must be a number of seconds above 0", False),
        (["run"], "the following arguments are required", False),
    ],
)
async def test_run_exits_2_on_usage_errors(
    live_server: ServerFactory, args: list[str], complaint: str, by_server: bool
) -> None:
    # The server's refusals need a server. The command's own come before any request: for them
    # --url names a port nobody listens on (a request would fail saying so, not the complaint),
    # and no server is started for nothing.
    if "--url" not in args:
        url = base_url(await live_server(run_collectors=False)) if by_server else f"http://127.0.0.1:{free_port()}"
        args = [*args, "--url", url]
    code, out, err = await cli(*args)
    assert code == 2, (out, err)
    assert complaint.lower() in err.lower(), err
    assert "Traceback" not in err


async def test_run_exits_2_when_the_server_is_unreachable() -> None:
    port = free_port()  # a port nobody listens on
    code, _, err = await cli("run", "demo", "--url", f"http://127.0.0.1:{port}")
    assert code == 2
    assert f"cannot reach the server at http://127.0.0.1:{port}: cannot connect to 127.0.0.1:{port}" in err
    assert "connection refused" in err
    assert "ssl:default" not in err and "Connect call failed" not in err  # aiohttp's noise
    assert "Traceback" not in err


async def test_following_a_run_costs_one_request_not_one_per_second(
    aiohttp_server, settings: Settings, collectors_file: Path
) -> None:  # type: ignore[no-untyped-def]
    """With polling, a run spent the client's whole rate limit (60 a minute) and got 429s, and
    so did anything else from the same host. Now: one event stream, whatever the interval."""
    app = create_app(
        replace_settings(
            settings, run_collectors=True, collectors_file=collectors_file,
            rate_limit_per_minute=3,
        )
    )  # fmt: skip
    reads: list[str] = []

    @web.middleware
    async def count_reads(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET":
            reads.append(request.path)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.insert(0, count_reads)
    server = await aiohttp_server(app)
    code, out, err = await cli("run", "demo", "--url", base_url(server), "--interval", "0.1", seconds=30)
    assert code == 0, (out, err)
    assert out.splitlines()[-1].endswith("All 1 collector(s) completed")
    assert len(reads) == 1 and reads[0].endswith("/events"), reads
    assert "HTTP 429" not in out + err and "Rate limit" not in out + err


async def test_a_lost_server_is_said_at_once_with_each_attempt() -> None:
    port = free_port()  # a port nobody listens on
    code, out, err = await cli("watch", "bc_12345678", "--url", f"http://127.0.0.1:{port}", "--timeout", "2")
    assert code == 1, (out, err)  # --timeout passed while it kept trying
    assert f"reconnecting to http://127.0.0.1:{port} (attempt 1)" in err
    assert f"reconnecting to http://127.0.0.1:{port} (attempt 2)" in err
    assert "connection refused" in err and "ssl:default" not in err


async def test_a_standalone_runner_runs_jobs_and_stops_cleanly_on_sigterm(
    live_server: ServerFactory,
    database_url: str,
    collectors_file: Path,
    tmp_path: Path,
    db,  # type: ignore[no-untyped-def]
) -> None:
    server = await live_server(run_collectors=False)  # the API only: the runner is elsewhere
    with open(tmp_path / "runner.log", "wb") as log:  # noqa: ASYNC230 (a local file, opened once)
        runner = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "runner", "--database-url", database_url,
            "--collectors-file", str(collectors_file), "--runner-id", "standalone", "--concurrency", "2",
            stdout=log, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "COLLECTOR_HUB_RUNNER_POLL_INTERVAL": "0.1", "COLLECTOR_HUB_CANCEL_GRACE_PERIOD": "0.5"},
        )  # fmt: skip
    try:
        code, out, err = await cli("run", "demo", "--url", base_url(server))
        assert code == 0, (out, err)
        code, out, _ = await cli("run", "hang", "--no-wait", "--url", base_url(server))
        job_id = re.search(r"\((ha_\d{8})\)", out)[1]  # type: ignore[index]
        pids = await eventually(lambda: _value(read_pids(tmp_path / "hang.pids")), what="the hang program to start")
        runner.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(runner.wait(), 20) == 0
    finally:
        if runner.returncode is None:
            runner.kill()
            await runner.wait()
    assert not any(process_alive(pid) for pid in pids)
    with db.cursor() as cur:
        cur.execute("SELECT status, runner_id FROM job_runs WHERE job_id = %s", (job_id,))
        assert cur.fetchone() == ("queued", None)  # handed back for the next runner
    log_text = (tmp_path / "runner.log").read_text()
    assert "runner standalone stopped" in log_text and "Traceback" not in log_text


async def _value(value: Any) -> Any:
    return value


async def test_a_standalone_runner_without_a_database_says_so() -> None:
    code, _, err = await cli("runner", "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert code == 1
    assert "collector-hub runner: error: cannot reach the database" in err and "Traceback" not in err
    code, _, err = await cli("runner", "--concurrency", "0", "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert code == 2 and "--runner-concurrency must be between 1 and 256" in err
