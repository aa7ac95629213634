"""The cross-vendor checks at scale: how long one run of the checks takes, and three reads of
its result over HTTP, for an account of 50,000 devices on each side (goal: checks <= 2 s).

    python bench/variances.py                  # 50,000 devices per source
    python bench/variances.py --devices 5000

The inventory is written straight into the tables (one complete run per source, as the
collectors leave it; docs/VARIANCES.md), in an embedded PostgreSQL of the bench's own (or
COLLECTOR_HUB_DATABASE_URL). Most devices agree; the rest are built to make each type of
variance: per 1,000 devices, 20 only in ThreatLocker, 20 only in NinjaOne, 4 ThreatLocker and 4
NinjaOne duplicates, 10 spare devices with the agent, 40 display names that differ and 6
organizations that differ. The checks run three times: the first finds every variance, the
second is a same-day re-run (nothing changes), the third follows a NinjaOne run in which the
display names were fixed (they resolve). Then a serve process answers the first page of
/api/exceptions, the latest report and a CSV export of every variance, each timed from request
to last byte (the best of three). Each figure is printed with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import database, served

from collectors.variance_checks import run_checks
from collectors.variance_settings import VarianceSettings

GOAL_SECONDS = 2.0

_FILL = """
    INSERT INTO job_batches (batch_id, status) VALUES ('bc_00000001', 'running');
    INSERT INTO job_runs (job_id, batch_id, collector, job_name, status) VALUES
        ('ni_00000001', 'bc_00000001', 'ninja', 'ninja-collector', 'running'),
        ('th_00000001', 'bc_00000001', 'threatlocker', 'threatlocker-collector', 'running');
    INSERT INTO inventory_runs (source, job_id, status, finished_at, devices_seen)
    VALUES ('ninja', 'ni_00000001', 'completed', clock_timestamp(), %(n)s),
           ('threatlocker', 'th_00000001', 'completed', clock_timestamp() + interval '1 ms', %(n)s);
    -- i mod 1000 decides what device i is: 0-19 only in ThreatLocker, 20-39 only in NinjaOne,
    -- 40-43 twice in ThreatLocker, 44-47 twice in NinjaOne, 48-57 spare, 58-97 renamed,
    -- 98-103 in another organization
    INSERT INTO inventory_devices (source, vendor_id, organization_id, organization_name, display_name, host_name,
                                   host_key, platform, raw, last_seen_job_id, last_seen_run, first_seen_at)
    SELECT 'ninja', i::text, (i %% 50)::text, 'Org ' || (i %% 50),
           CASE WHEN i %% 1000 BETWEEN 58 AND 97 THEN 'Desk ' || i
                WHEN i %% 1000 BETWEEN 48 AND 57 THEN 'Spare ' || i END,
           'WS-' || i, 'ws-' || i, 'windows', '{}'::jsonb, 'ni_00000001', 1, now() - interval '1 day'
      FROM generate_series(1, %(n)s) AS i WHERE i %% 1000 NOT BETWEEN 0 AND 19
    UNION ALL
    SELECT 'ninja', 'dup-' || i, (i %% 50)::text, 'Org ' || (i %% 50), NULL, 'WS-' || i, 'ws-' || i, 'windows',
           '{}'::jsonb, 'ni_00000001', 1, now() - interval '1 day'
      FROM generate_series(1, %(n)s) AS i WHERE i %% 1000 BETWEEN 44 AND 47;
    INSERT INTO inventory_devices (source, vendor_id, organization_id, organization_name, display_name, host_name,
                                   host_key, platform, raw, last_seen_job_id, last_seen_run, first_seen_at)
    SELECT 'threatlocker', 'tl-' || i, 'tl-org-' || (i %% 50),
           CASE WHEN i %% 1000 BETWEEN 98 AND 103 THEN 'Other ' || (i %% 50) ELSE 'Org ' || (i %% 50) END,
           'WS-' || i, 'ws-' || i || '.corp.example', 'ws-' || i, 'windows', '{}'::jsonb, 'th_00000001', 2,
           now() - interval '1 day'
      FROM generate_series(1, %(n)s) AS i WHERE i %% 1000 NOT BETWEEN 20 AND 39
    UNION ALL
    SELECT 'threatlocker', 'tl-dup-' || i, 'tl-org-' || (i %% 50), 'Org ' || (i %% 50), 'WS-' || i, 'WS-' || i,
           'ws-' || i, 'windows', '{}'::jsonb, 'th_00000001', 2, now() - interval '1 day'
      FROM generate_series(1, %(n)s) AS i WHERE i %% 1000 BETWEEN 40 AND 43;
    ANALYZE inventory_devices;
"""


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def timed_checks(dsn: str, label: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        started = time.perf_counter()
        result = run_checks(conn, VarianceSettings())
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    verdict = "ok" if seconds <= GOAL_SECONDS else f"OVER the {GOAL_SECONDS:g} s goal"
    print(f"checks, {label}: {seconds:.2f} s ({verdict}); {result.message()}; {load()}", flush=True)


def timed_get(base: str, path: str) -> None:
    best, size = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=120) as response:
            size = len(response.read())
        best = min(best, time.perf_counter() - started)
    print(f"GET {path}: {best * 1000:.0f} ms, {size:,} bytes (best of 3); {load()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50_000, help="devices per source (default 50,000)")
    args = parser.parse_args()
    with database() as dsn:
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cur:
                started = time.perf_counter()
                cur.execute(_FILL, {"n": args.devices})
            print(f"built {args.devices:,} devices per source in {time.perf_counter() - started:.1f} s", flush=True)
            timed_checks(dsn, "first run")
            timed_checks(dsn, "same-day re-run")
            with conn, conn.cursor() as cur:  # a NinjaOne run in which the display names were fixed
                cur.execute(
                    "UPDATE inventory_devices SET display_name = NULL"
                    " WHERE source = 'ninja' AND display_name LIKE 'Desk %'"
                )
            timed_checks(dsn, "after the display names were fixed")
        finally:
            conn.close()
        with served(dsn) as (base, _):
            timed_get(base, "/api/exceptions?limit=100")
            timed_get(base, "/api/variance-report/latest")
            timed_get(base, "/api/variances/export/csv?include_resolved=true")
    return 0


if __name__ == "__main__":
    sys.exit(main())
