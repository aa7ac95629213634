"""Inventories built for the cross-vendor checks: each source's devices written the way the
collectors write them (a job, an inventory run, pages, a complete), then the checks run."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg2
import psycopg2.extras

from collectors.inventory_records import DeviceRecord
from collectors.inventory_store import InventoryWriter
from collectors.variance_checks import CheckResult, run_checks
from collectors.variance_settings import VarianceSettings

_jobs = itertools.count(1)


def ninja(vendor_id: str, host: str | None, **fields: Any) -> DeviceRecord:
    """A NinjaOne device: ``host`` is its system (NetBIOS) name; ``location`` goes where
    devices-detailed puts it (references.location.name)."""
    location = fields.pop("location", None)
    raw: dict[str, Any] = {"id": vendor_id, "references": {"location": {"name": location}} if location else {}}
    values: dict[str, Any] = {
        "vendor_id": vendor_id,
        "raw": raw,
        "host_name": host,
        "organization_id": "1",
        "organization_name": "Acme",
        "platform": "windows",
    }
    values.update(fields)
    return DeviceRecord(**values)


def threatlocker(vendor_id: str, host: str | None, **fields: Any) -> DeviceRecord:
    """A ThreatLocker computer: ``host`` its hostname; its display name (computerName) is the
    host's short name unless given; the organization name as ThreatLocker sends it."""
    org = fields.pop("org", "Acme")
    raw: dict[str, Any] = {"computerId": vendor_id, "organizationName": org}
    short = host.split(".")[0].split("|")[0].upper() if host else None
    values: dict[str, Any] = {
        "vendor_id": vendor_id,
        "raw": raw,
        "host_name": host,
        "display_name": short,
        "organization_id": "tl-org-guid",
        "platform": "windows",
    }
    values.update(fields)
    return DeviceRecord(**values)


def write_source(db: Any, database_url: str, source: str, devices: list[DeviceRecord], complete: bool = True) -> str:
    """One inventory run of ``source`` that saw ``devices``; complete (what it did not see is
    marked removed) unless told otherwise, when the run stops after its page. Returns the job id."""
    n = next(_jobs)
    job_id, batch_id = f"{source[:2]}_{n:08d}", f"bc_{n:08d}"
    with db.cursor() as cur:
        cur.execute("INSERT INTO job_batches (batch_id, status) VALUES (%s, 'running')", (batch_id,))
        cur.execute(
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status) VALUES (%s, %s, %s, %s, 'running')",
            (job_id, batch_id, source, f"{source}-collector"),
        )
    writer = InventoryWriter(database_url, source, job_id)
    writer.open()
    writer.write_page(devices)
    if complete:
        writer.complete("done")
        writer.close()
    else:
        writer.close("stopped")
    return job_id


def baseline() -> tuple[list[DeviceRecord], list[DeviceRecord]]:
    """Five machines on which both vendors agree: same names, same organization, ThreatLocker's
    default naming (NinjaOne has no display name, ThreatLocker's is the host name)."""
    hosts = [f"WS-{n:02d}" for n in range(1, 6)]
    return (
        [ninja(f"{n}", host) for n, host in enumerate(hosts, 1)],
        [threatlocker(f"guid-{n}", f"{host.lower()}.corp.example") for n, host in enumerate(hosts, 1)],
    )


def empty_variances(db: Any) -> None:
    with db.cursor() as cur:
        cur.execute(
            "DELETE FROM variance_history; DELETE FROM variances; DELETE FROM variance_checks;"
            " DELETE FROM variance_organization_map; DELETE FROM job_batches;"
            " DELETE FROM inventory_devices; DELETE FROM inventory_runs"
        )


def check(database_url: str, settings: VarianceSettings | None = None, **kwargs: Any) -> CheckResult:
    """Run the checks directly (as the collector does, without a job)."""
    conn = psycopg2.connect(database_url)
    try:
        return run_checks(conn, settings or VarianceSettings(), **kwargs)
    finally:
        conn.close()


def variances(db: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(type, subject key) -> the variance's row."""
    with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM variances ORDER BY id")
        return {(r["type"], r["subject_key"]): dict(r) for r in cur.fetchall()}


def history(db: Any, variance_id: int) -> list[tuple[Any, ...]]:
    """(changed_by, from_status, to_status, note) of each change, oldest first."""
    with db.cursor() as cur:
        cur.execute(
            "SELECT changed_by, from_status, to_status, note FROM variance_history WHERE variance_id = %s ORDER BY id",
            (variance_id,),
        )
        return list(cur.fetchall())
