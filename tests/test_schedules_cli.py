"""``collector-hub schedules ...`` as a real subprocess against a real server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.settings import Settings
from tests.support.cli import base_url, cli

ADMIN_KEY = "admin-key-" + "a" * 24
READ_KEY = "read-key-" + "r" * 24


@pytest.fixture(autouse=True)
def clean(db: psycopg2.extensions.connection) -> Iterator[None]:
    with db.cursor() as cur:
        cur.execute("TRUNCATE schedules, job_batches CASCADE")
    yield


@pytest.fixture
async def server(aiohttp_server, database_url: str, tmp_path: Path) -> TestServer:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        run_collectors=False,
        run_schedules=False,
        api_keys=(("admin", ADMIN_KEY), ("read", READ_KEY)),
    )
    started: TestServer = await aiohttp_server(create_app(settings))
    return started


async def schedules(server: TestServer, *args: str, key: str = ADMIN_KEY) -> tuple[int, str, str]:
    action, *rest = args
    return await cli("schedules", action, "--url", base_url(server), *rest, env={"COLLECTOR_HUB_API_KEY": key})


async def test_add_list_pause_resume_next_remove(server: TestServer) -> None:
    code, out, err = await schedules(
        server, "add", "nightly", "--cron", "0 2 * * *", "--collectors", "demo,ninja", "--timezone", "America/New_York"
    )
    assert code == 0, err
    assert "added schedule nightly (sch_" in out
    assert out.count("02:00 E") == 5  # five next fire times, on New York's clock (EST or EDT)

    code, out, _ = await schedules(server, "list")
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split()[:3] == ["NAME", "CRON", "TIMEZONE"]
    assert row.startswith("nightly") and "0 2 * * *" in row and "enabled" in row and "demo,ninja" in row

    code, out, _ = await schedules(server, "pause", "nightly")
    assert (code, out.strip()) == (0, "paused schedule nightly")
    code, out, _ = await schedules(server, "next", "nightly")
    assert (code, out.strip()) == (0, "nightly is paused: nothing is due")
    code, out, _ = await schedules(server, "list")
    assert "paused" in out.splitlines()[1]
    code, out, _ = await schedules(server, "resume", "nightly")
    assert code == 0 and out.startswith("resumed schedule nightly") and out.count("02:00 E") == 5
    code, out, _ = await schedules(server, "next", "nightly")
    assert code == 0 and len(out.strip().splitlines()) == 5

    code, out, _ = await schedules(server, "remove", "nightly")
    assert (code, out.strip()) == (0, "removed schedule nightly")
    code, out, _ = await schedules(server, "list")
    assert len(out.strip().splitlines()) == 1


async def test_refusals_exit_1_with_the_servers_message(server: TestServer) -> None:
    code, _, err = await schedules(server, "add", "bad", "--cron", "61 * * * *", "--collectors", "demo")
    assert code == 1 and "400: cron field 1 (minute) is invalid: '61'" in err
    code, _, err = await schedules(server, "add", "bad", "--cron", "@daily", "--collectors", "demo",
                                   "--timezone", "Mars/Olympus")  # fmt: skip
    assert code == 1 and "Unknown time zone 'Mars/Olympus'" in err
    code, _, err = await schedules(server, "add", "bad", "--cron", "@daily", "--collectors", "nope")
    assert code == 1 and "Unknown collector(s): 'nope'" in err
    code, _, err = await schedules(server, "pause", "missing")
    assert code == 1 and "no schedule named 'missing'" in err
    code, _, err = await schedules(server, "add", "x", "--cron", "@daily", "--collectors", "demo", key=READ_KEY)
    assert code == 1 and "403" in err
    code, out, _ = await schedules(server, "list", key=READ_KEY)
    assert code == 0 and len(out.strip().splitlines()) == 1


async def test_usage_and_connection_errors_exit_2() -> None:
    code, _, err = await cli("schedules", "list", "--url", "ftp://example.com")
    assert code == 2 and "--url must be an http:// or https:// URL" in err
    code, _, err = await cli("schedules", "list", "--url", "http://127.0.0.1:1")
    assert code == 2 and "cannot reach http://127.0.0.1:1" in err
    code, _, err = await cli("schedules", "add", "x", "--collectors", "demo")
    assert code == 2 and "--cron" in err


async def test_the_url_may_carry_a_path_prefix_and_credentials(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """Behind a proxy at ``/hub`` that wants Basic auth: the request goes to the prefix, with the
    URL's user and password as Basic auth (as aiohttp sends them) beside the API key."""
    seen: list[tuple[str, str | None, str | None]] = []

    async def listing(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization"), request.headers.get("X-API-Key")))
        return web.json_response({"schedules": []})

    app = web.Application()
    app.router.add_get("/hub/api/schedules", listing)
    proxy = await aiohttp_server(app)
    url = f"http://us%40er:p%3Ass@{proxy.host}:{proxy.port}/hub"
    code, out, err = await cli("schedules", "list", "--url", url, env={"COLLECTOR_HUB_API_KEY": READ_KEY})
    assert code == 0, err
    assert out.split() == ["NAME", "CRON", "TIMEZONE", "STATE", "NEXT", "LAST", "BATCH", "COLLECTORS"]
    credentials = base64.b64encode(b"us@er:p:ss").decode()
    assert seen == [("/hub/api/schedules", f"Basic {credentials}", READ_KEY)]
