"""The inventory's write path alone: devices stored per second by ``InventoryWriter`` (open,
one write per page of 1,000, complete, close) for a first load, an unchanged re-run and a
re-run in which 10 % of the devices changed.

    python bench/inventory_upsert.py                    # 25,000 devices, 3 repetitions
    python bench/inventory_upsert.py --devices 50000 --repeat 5

The devices are the fake NinjaOne account's (tests/fakes/ninja.py), normalized by the ninja
collector's own ``normalize_device`` before the clock starts: the figure is the database
writes (encoding the page, the statements, the commits), not the vendor's API or the
collector's parsing (bench/inventory.py measures the whole collector process). A changed
device has a new ``lastContact`` (its raw record and its ``last_contact_at`` differ). Each
repetition empties the inventory first. Every row shows the load average (1 minute) when it
ended; the machine is shared, so compare rows taken at a similar load. Writes to an embedded
PostgreSQL of its own (deleted afterwards) or COLLECTOR_HUB_DATABASE_URL; set
BENCH_PROJECT_ROOT to measure another checkout's writer with the same bench.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, database

from collectors.inventory_records import DeviceRecord
from collectors.inventory_store import InventoryWriter
from collectors.ninja import normalize_device
from tests.fakes.ninja import FakeNinja

PAGE = 1000
GOAL_PER_SECOND = 5000


def records(devices: int, changed_every: int | None) -> list[DeviceRecord]:
    """The account's devices; with ``changed_every``, every n-th has a newer last contact."""
    fake = FakeNinja(devices=devices, organizations=50)
    organizations = {n: f"Org {n}" for n in range(1, 51)}
    out = []
    for index in range(devices):
        raw = fake.device(index)
        if changed_every and index % changed_every == 0:
            raw["lastContact"] += 3600
        out.append(normalize_device(raw, organizations))
    return out


def running_job(dsn: str) -> str:
    batch_id = f"bc_{secrets.randbelow(10**8):08d}"
    job_id = f"ni_{secrets.randbelow(10**8):08d}"
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO job_batches (batch_id, status) VALUES (%s, 'running')", (batch_id,))
            cur.execute(
                "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status)"
                " VALUES (%s, %s, 'ninja', 'ninja-collector', 'running')",
                (job_id, batch_id),
            )
    finally:
        conn.close()
    return job_id


def one_run(dsn: str, devices: list[DeviceRecord]) -> tuple[float, str]:
    """Seconds from open to close, and the job's final message."""
    job_id = running_job(dsn)
    started = time.perf_counter()
    writer = InventoryWriter(dsn, "ninja", job_id)
    writer.open()
    try:
        for at in range(0, len(devices), PAGE):
            writer.write_page(devices[at : at + PAGE])
        counts = writer.complete("{seen} seen, {new} new, {gone} gone")
    finally:
        writer.close()
    return time.perf_counter() - started, f"{counts.seen:,} seen, {counts.new:,} new, {counts.gone:,} gone"


def rewritten(dsn: str) -> int:
    """How many device rows the last run wrote in full (where the writer records it)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE record_written_at >= r.started_at) FROM inventory_devices,"
                " (SELECT started_at FROM inventory_runs ORDER BY run_id DESC LIMIT 1) r"
            )
            return int(cur.fetchone()[0])
    except psycopg2.errors.UndefinedColumn:
        return -1
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=25000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"writer: {sys.modules[InventoryWriter.__module__].__file__}")
    kinds = {
        "first load": records(args.devices, None),
        "unchanged re-run": records(args.devices, None),
        "10 % changed re-run": records(args.devices, 10),
    }
    rows: list[dict[str, Any]] = []
    with database() as dsn:
        for repetition in range(args.repeat):
            conn = psycopg2.connect(dsn)
            with conn, conn.cursor() as cur:
                cur.execute("DELETE FROM inventory_devices; DELETE FROM inventory_runs")
            conn.close()
            for kind, devices in kinds.items():
                seconds, message = one_run(dsn, devices)
                row = {
                    "repetition": repetition + 1,
                    "run": kind,
                    "devices": args.devices,
                    "seconds": round(seconds, 2),
                    "devices_per_second": round(args.devices / seconds),
                    "rows_written_in_full": rewritten(dsn),
                    "load_average": round(os.getloadavg()[0], 1),
                    "message": message,
                }
                rows.append(row)
                print(
                    f"#{row['repetition']} {kind:<20} {row['seconds']:>6.2f} s {row['devices_per_second']:>8,}/s"
                    f"  written in full: {row['rows_written_in_full']:>7,}  ({message}; load average"
                    f" {row['load_average']})",
                    flush=True,
                )
    print()
    for kind in kinds:
        rates = [r["devices_per_second"] for r in rows if r["run"] == kind]
        loads = [r["load_average"] for r in rows if r["run"] == kind]
        print(
            f"{kind:<20} {min(rates):>7,}-{max(rates):,} devices/s over {len(rates)} runs"
            f" (load average {min(loads)}-{max(loads)}; goal {GOAL_PER_SECOND:,}/s)"
        )
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "inventory_upsert.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
