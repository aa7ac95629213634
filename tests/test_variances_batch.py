"""The cross-vendor checks in a batch (docs/VARIANCES.md): a batch of ninja and threatlocker
against the vendor fakes gets the checks job, which starts after both collectors ended and
finds what the fakes were built to disagree on; fixed in the fake's data, it resolves on the
next batch; when both collectors fail, the checks are cancelled."""

from __future__ import annotations

import contextlib
from typing import Any

from tests.fakes.common import serve
from tests.fakes.ninja import FakeNinja
from tests.fakes.threatlocker import FakeThreatLocker
from tests.support.inventory import follow_job, hub_factory, ninja_env, threatlocker_env
from tests.support.runs import trigger
from tests.support.settings import replace_settings
from tests.support.variances import empty_variances, variances


async def _batch(client: Any) -> dict[str, dict[str, Any]]:
    created = await trigger(client, "ninja", "threatlocker")
    ended = {}
    for job in created["collectors"]:
        ended[job["collector"]], _ = await follow_job(client, job["job_id"], within=60)
    return ended


async def test_the_checks_run_after_both_collectors_and_follow_the_vendors_data(  # type: ignore[no-untyped-def]
    aiohttp_client, settings, tmp_path, db
) -> None:
    empty_variances(db)
    ninja, threatlocker = FakeNinja(devices=6), FakeThreatLocker(computers=6, name_offset=2)
    async with contextlib.AsyncExitStack() as stack:
        ninja_url = await stack.enter_async_context(serve(ninja.app(), ninja.faults))
        tl_url = await stack.enter_async_context(serve(threatlocker.app(), threatlocker.faults))
        make = hub_factory(aiohttp_client, replace_settings(settings, cross_vendor_by_default=True), tmp_path)
        client = await make(
            {"ninja": ninja_env(ninja, ninja_url), "threatlocker": threatlocker_env(threatlocker, tl_url)}
        )
        jobs = await _batch(client)
        checks = jobs["cross-vendor-checks"]
        assert checks["job_id"].startswith("cv_") and checks["status"] == "completed", checks
        with db.cursor() as cur:  # when a runner started each process (started_at is when it was queued)
            cur.execute(
                "SELECT c.run_started_at >= max(o.ended_at) FROM job_runs c JOIN job_runs o USING (batch_id)"
                " WHERE c.job_id = %s AND o.collector IN ('ninja', 'threatlocker') GROUP BY c.run_started_at",
                (checks["job_id"],),
            )
            assert cur.fetchone() == (True,)
        found = variances(db)
        # NinjaOne has HOST-00000..05, ThreatLocker HOST-00002..07
        assert {k for t, k in found if t == "MISSING_NINJA"} == {"host-00006", "host-00007"}
        assert {k for t, k in found if t == "MISSING_THREATLOCKER"} == {"host-00000", "host-00001"}
        threatlocker.removed = {4, 5}  # HOST-00006 and 07 leave ThreatLocker
        jobs = await _batch(client)
        assert jobs["cross-vendor-checks"]["status"] == "completed"
        found = variances(db)
        assert {found[("MISSING_NINJA", k)]["status"] for k in ("host-00006", "host-00007")} == {"resolved"}


async def test_when_both_collectors_fail_the_checks_are_cancelled(aiohttp_client, settings, tmp_path, db) -> None:  # type: ignore[no-untyped-def]
    empty_variances(db)
    ninja, threatlocker = FakeNinja(devices=2), FakeThreatLocker(computers=2)
    async with contextlib.AsyncExitStack() as stack:
        ninja_url = await stack.enter_async_context(serve(ninja.app(), ninja.faults))
        tl_url = await stack.enter_async_context(serve(threatlocker.app(), threatlocker.faults))
        checks_on = replace_settings(settings, cross_vendor_by_default=True, vendor_retries=0)  # fail once
        make = hub_factory(aiohttp_client, checks_on, tmp_path)
        envs = {  # credentials both vendors refuse
            "ninja": ninja_env(ninja, ninja_url, NINJA_CLIENT_SECRET="not-the-secret-0123456789"),
            "threatlocker": threatlocker_env(threatlocker, tl_url, THREATLOCKER_API_TOKEN="not-the-token-0123456789"),
        }
        client = await make(envs)
        jobs = await _batch(client)
    assert (jobs["ninja"]["status"], jobs["threatlocker"]["status"]) == ("failed", "failed")
    assert jobs["cross-vendor-checks"]["status"] == "cancelled"
    assert "no collector succeeded" in jobs["cross-vendor-checks"]["message"]
    assert variances(db) == {}
