"""``collector-hub collectors check``: credentials and connectivity, no run."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.fakes.common import serve
from tests.fakes.ninja import FakeNinja
from tests.fakes.threatlocker import FakeThreatLocker
from tests.support.collectors_file import write_collectors_file
from tests.support.inventory import empty_inventory, ninja_env, threatlocker_env, vendor_collectors
from tests.support.processes import serving


async def check(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "collectors", "check", *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_reports_what_each_vendor_collector_finds(tmp_path: Path) -> None:
    ninja, threatlocker = FakeNinja(devices=3), FakeThreatLocker(computers=1234)
    async with serve(ninja.app(), ninja.faults) as ninja_url, serve(threatlocker.app(), threatlocker.faults) as tl_url:
        # ninja's settings from the environment, threatlocker's from the collectors file's env table
        collectors = write_collectors_file(
            tmp_path / "c.toml", vendor_collectors({"threatlocker": threatlocker_env(threatlocker, tl_url)})
        )
        env = {**ninja_env(ninja, ninja_url), "COLLECTOR_HUB_COLLECTORS_FILE": str(collectors)}
        code, out, err = await check(env=env)
        assert code == 0, err
        assert "ninja: OK: NinjaOne at http://127.0.0.1:" in out and "token granted (scope 'monitoring')" in out
        assert "threatlocker: OK: ThreatLocker at http://127.0.0.1:" in out and "1,234 computers" in out

        env["NINJA_CLIENT_SECRET"] = "not-the-secret-at-all"
        code, out, err = await check("ninja", env=env)
        assert code == 1
        assert "ninja: FAILED: NinjaOne rejected the client credentials (HTTP 401)" in err
        assert "not-the-secret-at-all" not in out + err
        assert all(r.path in ("/ws/oauth/token", "/v2/organizations", "/v2/devices-detailed") for r in ninja.requests)


async def test_check_without_credentials_and_with_unknown_names(tmp_path: Path) -> None:
    env = {"NINJA_CLIENT_ID": "", "NINJA_CLIENT_SECRET": "", "THREATLOCKER_API_TOKEN": ""}
    code, _, err = await check("ninja", "demo", env=env)
    assert code == 1
    assert "ninja: FAILED: credentials not configured (set NINJA_CLIENT_ID and NINJA_CLIENT_SECRET" in err
    code, out, _ = await check("demo", env=env)
    assert code == 0 and "demo: OK:" in out and "not a vendor collector: nothing more to check" in out
    code, _, err = await check("crowdstrike", env=env)
    assert code == 2 and "unknown collector(s): crowdstrike" in err


async def test_collector_hub_run_ninja_threatlocker_then_the_summary(database_url: str, tmp_path: Path, db) -> None:  # type: ignore[no-untyped-def]
    """The issue's "done": a real serve process (its runner starts the real collectors) with the
    fakes' URLs and credentials in its environment, `collector-hub run ninja threatlocker`,
    then the summary shows both sources with their counts and the coverage gap."""
    empty_inventory(db)
    ninja, threatlocker = FakeNinja(devices=150), FakeThreatLocker(computers=120, name_offset=50)
    async with serve(ninja.app(), ninja.faults) as ninja_url, serve(threatlocker.app(), threatlocker.faults) as tl_url:
        env = {
            "COLLECTOR_HUB_DATABASE_URL": database_url,
            "COLLECTOR_HUB_RUNNER_POLL_INTERVAL": "0.1",
            # The cross-vendor checks that would follow are not this test's subject.
            "COLLECTOR_HUB_CROSS_VENDOR_BY_DEFAULT": "0",
            **ninja_env(ninja, ninja_url),
            **threatlocker_env(threatlocker, tl_url),
        }
        async with serving(env, tmp_path / "serve.log") as server:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server", "run", "ninja", "threatlocker", "--url", server.url, "--timeout", "90",
                env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, (out.decode(), err.decode(), server.log())
            async with aiohttp.ClientSession() as session:
                async with session.get(server.url + "/api/inventory/summary") as resp:
                    summary = await resp.json()
        log = server.log()
    counts = {s["source"]: s["devices"] for s in summary["sources"]}
    assert counts == {"ninja": 150, "threatlocker": 120}
    gaps = {(c["source"], c["missing_from"]): c["devices"] for c in summary["coverage"]}
    assert gaps == {("ninja", "threatlocker"): 50, ("threatlocker", "ninja"): 20}
    for secret in (ninja.client_secret, threatlocker.api_token, *ninja.tokens):
        assert secret not in log + out.decode() + err.decode()
