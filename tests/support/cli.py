"""The ``collector-hub`` command, run as a user runs it, against a server under test."""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp.test_utils import TestServer


async def cli(*args: str, env: dict[str, str] | None = None, seconds: float = 60) -> tuple[int, str, str]:
    """Run `collector-hub ARGS` to its end without blocking the event loop the server runs on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), seconds)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def base_url(server: TestServer) -> str:
    """The URL to give ``--url``: the test server's, without a trailing slash."""
    return str(server.make_url("")).rstrip("/")
