"""Vendor collectors into the inventory: devices stored per second and the collector
process's peak memory, for a small and a large account.

    python bench/inventory.py                       # 5,000 and 50,000 devices, both collectors
    python bench/inventory.py --sizes 50000 --collectors ninja

Each run is the real collector process (``python -m collectors.ninja`` / ``threatlocker``)
started as a runner starts it (job id and database URL in its environment), against the fake
vendor servers of tests/fakes/ served from this process, writing to an embedded PostgreSQL of
the bench's own (or COLLECTOR_HUB_DATABASE_URL). Two runs per size: the first inserts every
device, the second (same account, nothing changed) sees them all again. Rate: devices / wall
time of the process, start to exit (polled every 5 ms). Peak RSS: the process's VmHWM, read
while it runs. The client-side request limit is off (NINJA_/THREATLOCKER_REQUESTS_PER_MINUTE=0):
the figure is our side's throughput, not the vendor's limit. The fakes encode each record once,
before the run (``prepare``), and answer with those texts joined: the same bytes their API
gives, for less of the CPU they share with the collector. Everything shares this machine, so
each row shows the machine's load average when it ended and the CPU seconds of the collector
process, of the fake (this process) and of PostgreSQL during the run: compare rows taken at a
similar load. Results also go to bench/results/inventory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, database

from tests.fakes.common import serve
from tests.fakes.ninja import FakeNinja
from tests.fakes.threatlocker import BASE_PATH, FakeThreatLocker

GOAL_PER_SECOND = 5000


def new_job(dsn: str, collector: str) -> str:
    """A running job for the collector, as a runner's claim leaves it."""
    batch_id = f"bc_{secrets.randbelow(10**8):08d}"
    job_id = f"{collector[:2]}_{secrets.randbelow(10**8):08d}"
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO job_batches (batch_id, status) VALUES (%s, 'running')", (batch_id,))
            cur.execute(
                "INSERT INTO job_runs (job_id, batch_id, collector, job_name, status)"
                " VALUES (%s, %s, %s, %s, 'running')",
                (job_id, batch_id, collector, f"{collector}-collector"),
            )
    finally:
        conn.close()
    return job_id


def job_outcome(dsn: str, job_id: str) -> tuple[str, str]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status, coalesce(error, message) FROM job_runs WHERE job_id = %s", (job_id,))
            row = cur.fetchone()
            return (str(row[0]), str(row[1])) if row else ("gone", "")
    finally:
        conn.close()


def postmaster_pid(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = int(cur.fetchone()[0])
    finally:
        conn.close()
    return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, its live processes and the
    ones it has reaped (backends of connections that closed)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == postmaster:
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int:
    """The process's own peak RSS (VmHWM) so far; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def run_collector(command: list[str], env: dict[str, str]) -> tuple[int, float, int, float]:
    """Run to exit; (exit status, seconds, peak RSS in KiB, CPU seconds). The peak is read from
    /proc while the process runs: wait4's ru_maxrss would count the pages of this process
    (the fakes' encoded records) that the child had before it exec'd."""
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while True:
        peak = max(peak, peak_rss_kib(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    sys.stderr.write(proc.stderr.read().decode(errors="replace")[-500:])
    proc.stderr.close()
    return proc.returncode, elapsed, peak, usage.ru_utime + usage.ru_stime


@asynccontextmanager
async def fake_vendor(collector: str, devices: int) -> AsyncIterator[dict[str, str]]:
    """A fake account of ``devices`` and the environment that points the collector at it."""
    if collector == "ninja":
        ninja = FakeNinja(devices=devices, organizations=50)
        getattr(ninja, "prepare", lambda: None)()  # (BENCH_PROJECT_ROOT may be a checkout without it)
        async with serve(ninja.app(), ninja.faults) as url:
            yield {
                "NINJA_CLIENT_ID": ninja.client_id,
                "NINJA_CLIENT_SECRET": ninja.client_secret,
                "NINJA_BASE_URL": url,
                "NINJA_PAGE_SIZE": "1000",
                "NINJA_REQUESTS_PER_MINUTE": "0",
            }
    else:
        threatlocker = FakeThreatLocker(computers=devices)
        getattr(threatlocker, "prepare", lambda: None)()
        async with serve(threatlocker.app(), threatlocker.faults) as url:
            yield {
                "THREATLOCKER_BASE_URL": url + BASE_PATH,
                "THREATLOCKER_API_TOKEN": threatlocker.api_token,
                "THREATLOCKER_PAGE_SIZE": "500",
                "THREATLOCKER_REQUESTS_PER_MINUTE": "0",
            }


async def measure(dsn: str, postmaster: int, collector: str, devices: int, label: str) -> dict[str, Any]:
    async with fake_vendor(collector, devices) as vendor_env:
        job_id = new_job(dsn, collector)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_")},
            **vendor_env,
            "COLLECTOR_HUB_JOB_ID": job_id,
            "COLLECTOR_HUB_DATABASE_URL": dsn,
        }
        command = [sys.executable, "-m", f"collectors.{collector}"]
        own, server = time.process_time(), postgres_cpu(postmaster)
        # The fake answers from this event loop while the process runs in a thread's wait.
        code, seconds, rss_kib, cpu = await asyncio.to_thread(run_collector, command, env)
        own, server = time.process_time() - own, postgres_cpu(postmaster) - server
    status, message = job_outcome(dsn, job_id)
    if code != 0 or status != "completed":
        raise RuntimeError(f"{collector} {label}: exit {code}, job {status}: {message}")
    return {
        "load_average": round(os.getloadavg()[0], 1),
        "collector": collector,
        "devices": devices,
        "run": label,
        "seconds": round(seconds, 2),
        "devices_per_second": round(devices / seconds),
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "collector_cpu_seconds": round(cpu, 2),
        "fake_cpu_seconds": round(own, 2),
        "postgres_cpu_seconds": round(server, 2),
        "message": message,
    }


async def bench(sizes: list[int], collectors: list[str]) -> list[dict[str, Any]]:
    rows = []
    with database() as dsn:
        postmaster = postmaster_pid(dsn)
        for collector in collectors:
            for devices in sizes:
                conn = psycopg2.connect(dsn)
                with conn, conn.cursor() as cur:
                    cur.execute("DELETE FROM inventory_devices; DELETE FROM inventory_runs")
                conn.close()
                for label in ("insert", "update"):
                    row = await measure(dsn, postmaster, collector, devices, label)
                    rows.append(row)
                    print(
                        f"{collector:<13} {devices:>7,} {label:<7} {row['seconds']:>7.2f} s"
                        f" {row['devices_per_second']:>8,}/s {row['peak_rss_mib']:>7.1f} MiB"
                        f" {row['collector_cpu_seconds']:>6.2f} {row['fake_cpu_seconds']:>6.2f}"
                        f" {row['postgres_cpu_seconds']:>6.2f}"
                        f"   (load average {row['load_average']})",
                        flush=True,
                    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,50000", help="account sizes, comma-separated")
    parser.add_argument("--collectors", default="ninja,threatlocker", help="ninja and/or threatlocker")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    collectors = [c for c in args.collectors.split(",") if c]
    print(
        f"{'collector':<13} {'devices':>7} {'run':<7} {'time':>9} {'rate':>10} {'peak RSS':>11}"
        "  CPU s: collector, fake, postgres"
    )
    print("(the fake vendors answer from records encoded before each run: the same bytes as their API)")
    rows = asyncio.run(bench(sizes, collectors))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "inventory.json").write_text(json.dumps(rows, indent=2) + "\n")
    slowest = min(r["devices_per_second"] for r in rows)
    print(f"slowest: {slowest:,} devices/s (goal {GOAL_PER_SECOND:,}/s)")
    for collector in collectors:
        peaks: dict[int, float] = {}
        for r in rows:
            if r["collector"] == collector:
                peaks[r["devices"]] = max(peaks.get(r["devices"], 0.0), r["peak_rss_mib"])
        print(f"{collector}: peak RSS by account size: " + ", ".join(f"{n:,}: {m} MiB" for n, m in peaks.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
