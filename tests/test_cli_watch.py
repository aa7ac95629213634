"""`collector-hub watch`: the SSE client against a hand-made stream (resume, comments,
multi-line data, escape sequences) and, end to end, against the real server."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from typing import Any

import pytest
from aiohttp import web

from server.cli.client import RunCommandError
from server.cli.watch import fit, watch_batch
from tests.support.cli import cli
from tests.support.collectors_file import write_collectors_file
from tests.support.settings import replace_settings


def batch_body(status: str, percent: int, message: str) -> dict[str, Any]:
    return {
        "batch_id": "bc_00000001",
        "status": status,
        "progress_percent": percent,
        "message": message,
        "error": None,
        "duration_seconds": 3 if status == "completed" else None,
        "collectors": [
            {"job_id": "de_00000001", "job_name": "demo-collector", "collector": "demo", "status": status,
             "progress_percent": percent, "message": message, "error": None},
        ],
    }  # fmt: skip


def batch_event(seq: int, status: str, percent: int, message: str) -> bytes:
    text = json.dumps(batch_body(status, percent, message), indent=1)  # several lines: joined again by the parser
    data = "".join(f"data: {line}\n" for line in text.splitlines())
    return f"id: {seq}\nevent: batch\n{data}\n".encode()


@pytest.fixture
async def scripted_stream(aiohttp_server: Any) -> Any:
    """A stream that drops after the first event, then expects Last-Event-ID and finishes."""
    seen_last_ids: list[str | None] = []

    async def events(request: web.Request) -> web.StreamResponse:
        seen_last_ids.append(request.headers.get("Last-Event-ID"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": a comment the parser skips\nretry: 1000\n\n")
        if len(seen_last_ids) == 1:
            await response.write(batch_event(7, "running", 40, "Page \x1b[31m4\x1b[0m of 10"))
            return response  # the connection ends mid-run
        await response.write(batch_event(9, "running", 90, "Page 9 of 10"))
        await response.write(b"event: job\ndata: {}\n\n")  # other events are ignored
        await response.write(batch_event(12, "completed", 100, "Done"))
        return response

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "Batch not found"}, status=404)

    app = web.Application()
    app.router.add_get("/api/collectors/runs/batch/bc_00000001/events", events)
    app.router.add_get("/api/collectors/runs/batch/bc_00000404/events", missing)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), seen_last_ids


async def test_watch_resumes_with_last_event_id_and_exits_with_the_outcome(scripted_stream: Any) -> None:
    base_url, seen_last_ids = scripted_stream
    out = io.StringIO()
    assert await watch_batch(base_url, "bc_00000001", out=out) == 0
    assert seen_last_ids == [None, "7"]
    lines = out.getvalue().splitlines()
    assert lines[0] == "[demo de_00000001] running 40% Page  [31m4 [0m of 10"  # no raw escape
    assert "\x1b" not in out.getvalue()
    assert lines[-1] == "Batch bc_00000001 completed in 3s: Done"


async def test_watch_unknown_batch_is_an_error_not_a_retry(scripted_stream: Any) -> None:
    base_url, _ = scripted_stream
    with pytest.raises(RunCommandError, match=r"HTTP 404.*Batch not found"):
        await watch_batch(base_url, "bc_00000404", out=io.StringIO())


async def test_where_the_stream_does_not_work_it_long_polls(aiohttp_server: Any) -> None:
    """A proxy that answers the events URL with its own page: follow by long-poll instead."""
    polls: list[tuple[str | None, str | None]] = []
    states = [(5, "running", 50, "Halfway"), (8, "completed", 100, "Done")]

    async def proxy_page(request: web.Request) -> web.Response:
        return web.Response(text="<html>buffered</html>", content_type="text/html")

    async def long_poll(request: web.Request) -> web.Response:
        polls.append((request.query.get("wait"), request.headers.get("If-None-Match")))
        seq, status, percent, message = states[min(len(polls), len(states)) - 1]
        return web.json_response(batch_body(status, percent, message), headers={"ETag": f'"{seq}"'})

    app = web.Application()
    app.router.add_get("/api/collectors/runs/batch/bc_00000001/events", proxy_page)
    app.router.add_get("/api/collectors/runs/batch/bc_00000001", long_poll)
    server = await aiohttp_server(app)
    out = io.StringIO()
    assert await watch_batch(str(server.make_url("")).rstrip("/"), "bc_00000001", out=out) == 0
    assert polls == [("30", None), ("30", '"5"')]
    assert out.getvalue().splitlines()[-1] == "Batch bc_00000001 completed in 3s: Done"


def test_bars_cut_the_message_between_words() -> None:
    line = "demo [######] 50% running Processing the second page of devices from the vendor"
    cut = fit(line, 50)
    assert len(cut) <= 50 and cut.endswith("…")
    assert cut[:-1] in line and line[len(cut) - 1] == " "  # it stopped where a word ended
    assert fit("short", 50) == "short"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_watch_draws_bars_in_place_on_a_terminal(scripted_stream: Any) -> None:
    base_url, _ = scripted_stream
    out = Tty()
    assert await watch_batch(base_url, "bc_00000001", out=out) == 0
    text = out.getvalue()
    assert "[#########---------------]  40% running" in text  # 40 % of 24 cells
    assert "\x1b[2F" in text  # the second drawing moved up over the first two lines
    assert "[########################] 100% completed" in text


async def test_cli_watch_refuses_a_malformed_batch_id() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "watch", "bc_1; rm -rf /", stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"BATCH_ID must look like bc_12345678" in err


async def test_run_with_watch_follows_a_real_batch_to_completion(
    aiohttp_server: Any, settings: Any, tmp_path: Any
) -> None:
    from server.app import create_app

    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "demo": {
                "command": [sys.executable, "-m", "collectors.demo"],
                "env": {"DEMO_PAGES": "4", "DEMO_PAGE_SECONDS": "0.2"},
            }
        },
    )
    app = create_app(
        replace_settings(settings, run_collectors=True, runner_poll_interval=0.1, collectors_file=collectors)
    )
    server = await aiohttp_server(app)
    code, out, err = await cli("run", "demo", "--watch", "--url", str(server.make_url("")).rstrip("/"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Batch bc_") and "queued: demo (de_" in lines[0]
    assert any(" running " in line for line in lines)
    assert lines[-1].startswith("Batch bc_") and " completed in " in lines[-1]
