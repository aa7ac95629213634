"""`collector-hub logs` and `collector-hub rerun` against a real server with a real runner."""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

import aiohttp

from server.app import create_app
from server.cli.logs import terminal_text
from tests.support.cli import cli
from tests.support.collectors_file import write_collectors_file
from tests.support.conditions import eventually
from tests.support.job_logs import TOKEN, chatty
from tests.support.settings import replace_settings


def test_escape_sequences_are_stripped():
    assert terminal_text("\x1b[31mred\x1b[0m \x1b]0;title\x07done\x1b[2K \x9b1mx") == "red done x"
    assert terminal_text("tab\there\x00") == "tab here "


async def test_logs_prints_and_follows_a_running_job(aiohttp_server: Any, settings: Any, tmp_path: Any) -> None:
    server = await aiohttp_server(create_app(chatty(settings, tmp_path, 300)))
    url = str(server.make_url("")).rstrip("/")
    code, out, err = await cli("run", "chatty", "--no-wait", "--url", url)
    assert code == 0, err
    job_id = out.split("(")[1].split(")")[0]
    follow = asyncio.create_task(cli("logs", job_id, "--follow", "--url", url))
    (tmp_path / "go").touch()
    code, out, err = await follow
    assert code == 1, err  # the collector exits 3: the job failed
    stdout = out.splitlines()
    assert stdout[0] == "connecting with token [redacted] to the vendor"
    assert TOKEN not in out + err
    assert [line for line in stdout if line.startswith("line ")] == [f"line {n}" for n in range(1, 301) if n % 100]
    assert "warning at line 100" in err.splitlines()
    assert err.splitlines()[0].startswith("[collector-hub] Runner ") and " started pid " in err.splitlines()[0]
    assert re.fullmatch(r"\[collector-hub\] Collector exited with code 3 after \d+\.\d s", err.splitlines()[-1])

    code, again, _ = await cli("logs", job_id, "--url", url)
    assert code == 0 and again == out  # the stored log, printed the same way

    code, _, err = await cli("logs", "zz_00000000", "--url", url)
    assert code == 2 and "Job not found" in err
    code, _, err = await cli("logs", "nope", "--url", url)
    assert code == 2 and "JOB_ID must look like" in err


async def test_the_demos_log_is_printed_as_the_readme_shows_it(
    aiohttp_server: Any, settings: Any, tmp_path: Any
) -> None:
    """README "Try it": run the demo, then `collector-hub logs` its job (it used to print nothing)."""
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "demo": {
                "command": [sys.executable, "-m", "collectors.demo"],
                "env": {"DEMO_PAGES": "3", "DEMO_PAGE_SECONDS": "0.05"},
            }
        },
    )
    app = create_app(
        replace_settings(settings, run_collectors=True, runner_poll_interval=0.1, collectors_file=collectors)
    )
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    code, out, err = await cli("run", "demo", "--url", url)
    assert code == 0, err
    job_id = out.split("(")[1].split(")")[0]

    async def end_note_stored() -> bool:  # the end note follows the demo's own "completed"
        body = await server_client_get(url, f"/api/collectors/runs/job/{job_id}/logs")
        return any(line["stream"] == "system" and "exited with code" in line["text"] for line in body["lines"])

    # Waited for over HTTP, then printed by the command once (each command costs a process).
    await eventually(end_note_stored, what="the demo's log to end with the runner's note")
    code, out, err = await cli("logs", job_id, "--url", url)
    assert code == 0, err
    assert out.splitlines() == ["demo: collecting 3 pages, 0.05 s each"] + [
        f"demo: fetched page {n}/3" for n in (1, 2, 3)
    ] + ["demo: done, 3 pages collected"]
    first, last = err.splitlines()
    assert re.fullmatch(r"\[collector-hub\] Runner \S+ started pid \d+: .+ -m collectors\.demo", first)
    assert re.fullmatch(r"\[collector-hub\] Collector exited with code 0 after \d+\.\d s", last)


async def test_rerun_reruns_the_failed_jobs_and_watches(aiohttp_server: Any, settings: Any, tmp_path: Any) -> None:
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "demo": {
                "command": [sys.executable, "-m", "collectors.demo"],
                "env": {"DEMO_PAGES": "2", "DEMO_PAGE_SECONDS": "0.05"},
            },
            "crash": {"command": [sys.executable, "-c", "import sys; sys.exit(1)"]},
        },
    )
    app = create_app(
        replace_settings(
            settings, run_collectors=True, runner_poll_interval=0.1, collectors_file=collectors, rate_limit_per_minute=0
        )
    )
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    code, out, _ = await cli("run", "demo", "crash", "--url", url)
    assert code == 1
    batch_id = out.split()[1]

    code, out, err = await cli("rerun", batch_id, "--failed", "--watch", "--url", url)
    assert code == 1, err  # crash fails again
    first = out.splitlines()[0]
    assert first.startswith("Batch bc_") and f"re-running {batch_id}: crash (cr_" in first
    new_batch = first.split()[1]
    body = await server_client_get(url, f"/api/collectors/runs/batch/{new_batch}")
    assert body["rerun_of"] == batch_id and [j["collector"] for j in body["collectors"]] == ["crash"]

    code, out, err = await cli("rerun", batch_id, "--url", url)
    assert code == 0 and "demo (de_" in out and "crash (cr_" in out
    running = out.split()[1]
    code, _, err = await cli("rerun", running, "--url", url)
    assert code in (0, 2)  # refused while it runs (409), unless it already ended
    if code == 2:
        assert "HTTP 409" in err
    await eventually(lambda: _ended(url, running), what="the re-run to end")
    code, _, err = await cli("rerun", "bc_00000000", "--url", url)
    assert code == 2 and "HTTP 404" in err


async def server_client_get(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url + path) as resp:
        return await resp.json()


async def _ended(url: str, batch_id: str) -> bool:
    body = await server_client_get(url, f"/api/collectors/runs/batch/{batch_id}")
    return body["status"] in ("completed", "failed", "cancelled")


async def test_rerun_failed_of_a_batch_with_nothing_failed_answers_in_the_commands_terms(
    aiohttp_server: Any, settings: Any, tmp_path: Any
) -> None:
    """It used to pass on the API's words: 'send {"only": "all"} to run every job again'."""
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "demo": {
                "command": [sys.executable, "-m", "collectors.demo"],
                "env": {"DEMO_PAGES": "1", "DEMO_PAGE_SECONDS": "0"},
            }
        },
    )
    app = create_app(
        replace_settings(settings, run_collectors=True, runner_poll_interval=0.1, collectors_file=collectors)
    )
    url = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    code, out, err = await cli("run", "demo", "--url", url)
    assert code == 0, err
    batch_id = out.split()[1]

    code, out, err = await cli("rerun", batch_id, "--failed", "--url", url)
    assert code == 2 and out == ""
    assert err == (
        f"collector-hub rerun: error: batch {batch_id} completed with no failed or cancelled job, so --failed has"
        f" nothing to re-run; run every job again with: collector-hub rerun {batch_id}\n"
    )
    code, out, err = await cli("rerun", batch_id, "--url", url)  # what it says to do works
    assert code == 0, err
    assert out.startswith("Batch bc_") and f"re-running {batch_id}: demo (de_" in out
