"""The cross-vendor checks over inventories built for each variance type (docs/VARIANCES.md):
each type is produced by its own fixture and by no other, and the lifecycle a check drives."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from collectors.variance_settings import VarianceSettings
from server.app import create_app
from server.settings import SettingsError, load_settings
from tests.support.collectors_file import write_collectors_file
from tests.support.inventory import follow_job
from tests.support.runs import trigger
from tests.support.settings import replace_settings
from tests.support.variances import (
    baseline,
    check,
    empty_variances,
    history,
    ninja,
    threatlocker,
    variances,
    write_source,
)


@pytest.fixture
def fresh(db: Any) -> Any:
    empty_variances(db)
    return db


def _arrange(db: Any, database_url: str, extra_ninja: list[Any], extra_tl: list[Any]) -> None:
    n, t = baseline()
    write_source(db, database_url, "ninja", n + extra_ninja)
    write_source(db, database_url, "threatlocker", t + extra_tl)


def test_the_baseline_has_no_variance(fresh, database_url) -> None:  # type: ignore[no-untyped-def]
    _arrange(fresh, database_url, [], [])
    result = check(database_url)
    assert (result.complete, result.ninja_devices, result.threatlocker_devices, result.found) == (True, 5, 5, 0)
    assert variances(fresh) == {}


# Each case: the devices added to the baseline on each side, and the one variance they make.
CASES: dict[str, tuple[list[Any], list[Any], set[tuple[str, str]]]] = {
    "MISSING_NINJA": (
        [],
        [threatlocker("guid-x", "TL-ONLY-01.corp.example|Front desk")],
        {("MISSING_NINJA", "tl-only-01")},
    ),
    "MISSING_THREATLOCKER": (
        [
            ninja("90", "NJ-ONLY-01"),
            ninja("91", "SPARE-LAPTOP", display_name="Spare laptop"),  # spare: right not to have the agent
            ninja("92", "CORE-SWITCH", platform="network"),  # the agent does not run there
        ],
        [],
        {("MISSING_THREATLOCKER", "nj-only-01")},
    ),
    "DUPLICATE_TL": (
        [ninja("90", "WS-DUP")],
        [threatlocker("guid-x", "ws-dup.corp.example"), threatlocker("guid-y", "WS-DUP|old name")],
        {("DUPLICATE_TL", "ws-dup")},
    ),
    "DUPLICATE_NINJA": (
        [ninja("90", "WS-TWICE"), ninja("91", "ws-twice", dns_name="ws-twice.other.example")],
        [threatlocker("guid-x", "ws-twice.corp.example", display_name="Reception")],  # never paired
        {("DUPLICATE_NINJA", "ws-twice")},
    ),
    "SPARE_MISMATCH": (
        [ninja("90", "WS-SPARE1", location="Spare shelf"), ninja("91", "WS-KEPT", location="Spare Stock")],
        [threatlocker("guid-x", "ws-spare1.corp.example"), threatlocker("guid-y", "ws-kept.corp.example")],
        {("SPARE_MISMATCH", "ws-spare1")},
    ),
    "DISPLAY_NAME_MISMATCH": (
        [
            ninja("90", "WS-NAMED", display_name="Reception PC"),
            ninja("91", "WS-CASE", display_name="ws-case laptop"),
            ninja("92", "WS-DEFAULT"),
        ],
        [
            threatlocker("guid-x", "ws-named.corp.example", display_name="Front desk"),
            threatlocker("guid-y", "ws-case.corp.example", display_name=" WS-CASE LAPTOP "),  # case only
            threatlocker("guid-z", "ws-default.corp.example", display_name="ws-default.corp.example"),  # default naming
        ],
        {("DISPLAY_NAME_MISMATCH", "ws-named")},
    ),
    "ORG_MISMATCH": (
        [ninja("90", "WS-ORG")],
        [threatlocker("guid-x", "ws-org.corp.example", org="Acme Holdings")],
        {("ORG_MISMATCH", "ws-org")},
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_type_comes_from_its_own_fixture_only(fresh, database_url, kind) -> None:  # type: ignore[no-untyped-def]
    extra_ninja, extra_tl, expected = CASES[kind]
    _arrange(fresh, database_url, extra_ninja, extra_tl)
    check(database_url, VarianceSettings(excluded_locations=("spare stock",)))
    found = variances(fresh)
    assert set(found) == expected
    (row,) = found.values()
    assert row["status"] == "active" and row["first_seen"] == row["last_seen"]
    assert history(fresh, row["id"]) == [("cross-vendor-checks", None, "active", "found")]


def test_details_name_both_sides_with_one_set_of_keys(fresh, database_url) -> None:  # type: ignore[no-untyped-def]
    extra_ninja, extra_tl, _ = CASES["DISPLAY_NAME_MISMATCH"]
    _arrange(fresh, database_url, extra_ninja, extra_tl)
    check(database_url)
    row = variances(fresh)[("DISPLAY_NAME_MISMATCH", "ws-named")]
    assert row["hostname"] == "ws-named" and row["organization"] == "Acme"
    assert {
        k: row["details"][k] for k in ("tl_display_name", "ninja_display_name", "tl_org_name", "ninja_org_name")
    } == {
        "tl_display_name": "Front desk",
        "ninja_display_name": "Reception PC",
        "tl_org_name": "Acme",
        "ninja_org_name": "Acme",
    }


def test_an_unmapped_organization_is_reported_as_such_and_a_mapping_settles_it(fresh, database_url) -> None:  # type: ignore[no-untyped-def]
    extra_ninja, extra_tl, _ = CASES["ORG_MISMATCH"]
    _arrange(fresh, database_url, extra_ninja, extra_tl)
    check(database_url)
    row = variances(fresh)[("ORG_MISMATCH", "ws-org")]
    assert row["details"]["mapping"] == "unmapped_organization"
    with fresh.cursor() as cur:
        cur.execute(
            "INSERT INTO variance_organization_map (ninja_organization, threatlocker_organization, updated_by)"
            " VALUES ('Globex', 'acme holdings', 'test')"
        )
    check(database_url)
    assert variances(fresh)[("ORG_MISMATCH", "ws-org")]["details"]["mapping"] == "different_organization"
    with fresh.cursor() as cur:
        cur.execute("UPDATE variance_organization_map SET ninja_organization = '1'")  # NinjaOne's id of Acme
    check(database_url)
    assert variances(fresh)[("ORG_MISMATCH", "ws-org")]["status"] == "resolved"


def test_the_netbios_cut_is_a_setting(fresh, database_url) -> None:  # type: ignore[no-untyped-def]
    _arrange(
        fresh,
        database_url,
        [ninja("90", "LONGHOSTNAME-WS")],
        [threatlocker("guid-x", "longhostname-ws-0001.corp.example")],
    )
    check(database_url)
    assert variances(fresh) == {}
    empty_variances(fresh)
    _arrange(
        fresh,
        database_url,
        [ninja("90", "LONGHOSTNAME-WS")],
        [threatlocker("guid-x", "longhostname-ws-0001.corp.example")],
    )
    check(database_url, VarianceSettings(netbios_cut=False))
    assert set(variances(fresh)) == {
        ("MISSING_NINJA", "longhostname-ws-0001"),
        ("MISSING_THREATLOCKER", "longhostname-ws"),
    }


def test_blank_host_keys_never_match(fresh, database_url) -> None:  # type: ignore[no-untyped-def]
    _arrange(
        fresh, database_url, [ninja("90", None), ninja("91", " | ")], [threatlocker("guid-x", None, display_name=None)]
    )
    result = check(database_url)
    assert result.found == 0 and variances(fresh) == {}


def test_a_variance_fixed_in_the_data_resolves_itself_and_a_rerun_changes_nothing(fresh, database_url) -> None:  # type: ignore[no-untyped-def]
    n, t = baseline()
    write_source(fresh, database_url, "ninja", n)
    write_source(fresh, database_url, "threatlocker", [*t, threatlocker("guid-x", "tl-only-01.corp.example")])
    check(database_url)
    again = check(database_url)  # the same day, nothing changed
    assert (again.found, again.opened, again.resolved) == (1, 0, 0)
    row = variances(fresh)[("MISSING_NINJA", "tl-only-01")]
    assert len(history(fresh, row["id"])) == 1 and row["last_seen"] > row["first_seen"]
    write_source(fresh, database_url, "ninja", [*n, ninja("90", "TL-ONLY-01")])  # now in NinjaOne too
    result = check(database_url)
    assert (result.found, result.resolved) == (0, 1)
    row = variances(fresh)[("MISSING_NINJA", "tl-only-01")]
    assert row["status"] == "resolved" and row["resolved_by"] == "cross-vendor-checks"
    assert history(fresh, row["id"])[-1] == ("cross-vendor-checks", "active", "resolved", "no longer found")
    write_source(fresh, database_url, "ninja", n)  # and gone again
    check(database_url)
    row = variances(fresh)[("MISSING_NINJA", "tl-only-01")]
    assert row["status"] == "active" and row["resolved_at"] is None
    assert history(fresh, row["id"])[-1] == ("cross-vendor-checks", "resolved", "active", "found again")


def test_only_complete_runs_are_read_and_an_incomplete_check_resolves_nothing(fresh, database_url) -> None:  # type: ignore[no-untyped-def]
    n, t = baseline()
    write_source(
        fresh,
        database_url,
        "threatlocker",
        [*t, threatlocker("guid-x", "tl-dup.corp.example"), threatlocker("guid-y", "tl-dup.corp.example")],
    )
    result = check(database_url)  # no NinjaOne run yet: only the ThreatLocker-only check runs
    assert not result.complete and result.missing_sources == ("ninja",)
    assert set(variances(fresh)) == {("DUPLICATE_TL", "tl-dup")}
    write_source(fresh, database_url, "threatlocker", t)  # the duplicate is gone
    write_source(fresh, database_url, "ninja", [*n, ninja("90", "NEW-ONE")], complete=False)  # a run that stopped
    result = check(database_url)
    assert not result.complete and variances(fresh)[("DUPLICATE_TL", "tl-dup")]["status"] == "active"
    assert result.ninja_devices == 0  # a stopped run is not read
    write_source(fresh, database_url, "ninja", n)
    result = check(database_url)
    assert result.complete and result.resolved == 1 and set(variances(fresh)) == {("DUPLICATE_TL", "tl-dup")}
    with fresh.cursor() as cur:
        cur.execute(
            "SELECT complete, ninja_run_id IS NOT NULL, threatlocker_run_id IS NOT NULL"
            " FROM variance_checks ORDER BY check_id"
        )
        assert cur.fetchall() == [(False, False, True), (False, False, True), (True, True, True)]


def test_the_collector_outside_a_runner_fails_with_a_clear_message() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "collectors.cross_vendor_checks"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 1
    assert "run by a runner only (COLLECTOR_HUB_JOB_ID and COLLECTOR_HUB_DATABASE_URL are not set)" in done.stderr


def _checks_collector(env: dict[str, str]) -> dict[str, Any]:
    return {"command": [sys.executable, "-m", "collectors.cross_vendor_checks"], "env": env, "timeout": 60}


async def test_the_checks_run_as_a_collector_and_complete_their_job_with_the_variances(  # type: ignore[no-untyped-def]
    fresh, database_url, aiohttp_client, settings, tmp_path
) -> None:
    extra_ninja, extra_tl, expected = CASES["SPARE_MISMATCH"]
    _arrange(fresh, database_url, extra_ninja, extra_tl)
    collectors = write_collectors_file(
        tmp_path / "collectors.toml",
        {
            "cross-vendor-checks": _checks_collector({"CROSS_VENDOR_EXCLUDED_LOCATIONS": "Spare Stock"}),
            "checks-misconfigured": _checks_collector({"CROSS_VENDOR_NETBIOS_CUT": "maybe"}),
        },
    )
    app_settings = replace_settings(
        settings, run_collectors=True, runner_poll_interval=0.1, collectors_file=collectors, rate_limit_per_minute=0
    )
    client = await aiohttp_client(create_app(app_settings))
    created = await trigger(client, "cross-vendor-checks")
    job, _ = await follow_job(client, created["collectors"][0]["job_id"])
    assert job["status"] == "completed", job
    assert job["message"].startswith("Compared 7 NinjaOne and 7 ThreatLocker devices: 1 variances (1 new")
    assert set(variances(fresh)) == expected
    with fresh.cursor() as cur:
        cur.execute("SELECT job_id, complete FROM variance_checks")
        assert cur.fetchall() == [(job["job_id"], True)]
    created = await trigger(client, "checks-misconfigured")
    job, _ = await follow_job(client, created["collectors"][0]["job_id"])
    assert job["status"] == "failed"
    assert job["error"] == "CROSS_VENDOR_NETBIOS_CUT must be true or false (1/0, yes/no, on/off), got 'maybe'"


def test_the_settings_are_read_and_checked_by_the_server_as_the_collector_reads_them() -> None:
    settings = load_settings(
        {
            "CROSS_VENDOR_NETBIOS_CUT": "off",
            "CROSS_VENDOR_EXCLUDED_LOCATIONS": "Spare Stock, Lab ,",
            "CROSS_VENDOR_SPARE_DEVICE_CLASSES": "VMWARE_VM_GUEST",
            "CROSS_VENDOR_AGENT_PLATFORMS": "windows",
        }
    )
    assert settings.variances == VarianceSettings(
        netbios_cut=False,
        excluded_locations=("Spare Stock", "Lab"),
        spare_device_classes=("VMWARE_VM_GUEST",),
        agent_platforms=("windows",),
    )
    with pytest.raises(SettingsError, match="CROSS_VENDOR_AGENT_PLATFORMS names unknown platforms beos"):
        load_settings({"CROSS_VENDOR_AGENT_PLATFORMS": "windows,beos"})
