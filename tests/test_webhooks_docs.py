"""The receiver guide's verification examples work on a real delivery: the Python one is run
here, the JavaScript one with Node.js when it is installed."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from tests.support.conditions import eventually
from tests.support.settings import replace_settings
from tests.support.webhook_receivers import Received, start_receiver
from tests.support.webhooks import FAST, delivery_status, finish_batch, register

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "WEBHOOKS.md"


def code_block(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.S)
    assert found, f"no {language} block in {GUIDE.name}"
    return found.group(1)


@pytest.fixture
async def delivered(aiohttp_client, aiohttp_server, settings, db) -> tuple[str, Received]:  # type: ignore[no-untyped-def]
    receiver = await start_receiver(aiohttp_server)
    hub = await aiohttp_client(create_app(replace_settings(settings, **FAST)))
    hook = await register(hub, receiver.url)
    await finish_batch(hub)
    await eventually(lambda: delivery_status(db, hook["id"], "succeeded"), what="delivered")
    return hook["secret"], receiver.received[0]


async def test_the_python_example_verifies_a_real_delivery(delivered):
    secret, got = delivered
    namespace: dict[str, Any] = {}
    exec(code_block("python"), namespace)
    assert namespace["verify"](secret, got.headers, got.body)
    assert namespace["verify_x_signature"](secret, got.headers, got.body)
    assert not namespace["verify"](secret, got.headers, got.body.replace(b"completed", b"failed"))
    assert not namespace["verify_x_signature"](secret, got.headers, got.body + b"\n")
    stale = {**got.headers, "webhook-timestamp": str(int(got.headers["webhook-timestamp"]) - 3600)}
    assert not namespace["verify"](secret, stale, got.body)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
async def test_the_javascript_example_verifies_a_real_delivery(delivered, tmp_path):
    secret, got = delivered
    (tmp_path / "verify.js").write_text(code_block("javascript"))
    script = """
const { verify } = require("./verify.js");
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const body = Buffer.from(input.body, "base64");
const tampered = Buffer.concat([body, Buffer.from(" ")]);
console.log(JSON.stringify([verify(input.secret, input.headers, body), verify(input.secret, input.headers, tampered)]));
"""
    (tmp_path / "check.js").write_text(script)
    payload = json.dumps({"secret": secret, "headers": got.headers, "body": base64.b64encode(got.body).decode()})
    proc = await asyncio.create_subprocess_exec("node", "check.js", cwd=tmp_path, stdin=PIPE, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(proc.communicate(payload.encode()), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == [True, False]
