"""Two `collector-hub serve` processes sharing one database, with schedules firing every
minute for real (issue 13's "done when"): exactly one batch per due time, each visible in the
API of both nodes with its schedule, and overlap `skip` holding while a slow batch runs.

    python bench/schedules_two_nodes.py [--minutes 5]

Prints one line per due time and schedule (which node fired it, the batch, the lag from due
time to batch creation, or why it was skipped), then the totals. Exits 1 if any due time
started more or fewer than one batch, or a skip was missed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import database, served

# A quick collector (a few seconds) every minute, and a slow one (about 2.5 minutes, longer
# than two due times) under overlap skip.
COLLECTORS_FILE = """
[collectors.quick]
command = ["{python}", "-m", "collectors.demo"]
env = {{ DEMO_PAGES = "3", DEMO_PAGE_SECONDS = "1" }}

[collectors.slow]
command = ["{python}", "-m", "collectors.demo"]
env = {{ DEMO_PAGES = "30", DEMO_PAGE_SECONDS = "5" }}

[schedules.every-minute]
collectors = ["quick"]
cron = "*/1 * * * *"
overlap = "queue"

[schedules.slow-skip]
collectors = ["slow"]
cron = "*/1 * * * *"
overlap = "skip"
"""


def rows(dsn: str, sql: str) -> list[dict[str, Any]]:
    with (
        contextlib.closing(psycopg2.connect(dsn)) as conn,
        conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
    ):
        cur.execute(sql)
        return list(cur.fetchall())


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=5, help="whole due times to watch (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ch-sched-") as tmp, database() as dsn:
        collectors = Path(tmp) / "collectors.toml"
        collectors.write_text(COLLECTORS_FILE.format(python=sys.executable))
        settings = {"run_collectors": "1", "collectors_file": str(collectors), "log_level": "INFO"}
        with served(dsn, **settings) as (node_a, _), served(dsn, **settings) as (node_b, _):
            started = dt.datetime.now(dt.UTC)
            first_due = started.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
            last_due = first_due + dt.timedelta(minutes=args.minutes - 1)
            print(f"nodes {node_a} and {node_b}; watching due times {first_due:%H:%M} to {last_due:%H:%M} UTC")
            while dt.datetime.now(dt.UTC) < last_due + dt.timedelta(seconds=10):
                time.sleep(1)
            return report(dsn, (node_a, node_b), first_due, last_due)


def report(dsn: str, nodes: tuple[str, str], first_due: dt.datetime, last_due: dt.datetime) -> int:
    window = f"f.due_at BETWEEN '{first_due.isoformat()}' AND '{last_due.isoformat()}'"
    fires = rows(
        dsn,
        "SELECT s.name, f.due_at, f.outcome, f.node, f.detail, f.batch_id,"
        " extract(epoch FROM b.started_at - f.due_at) AS lag"
        " FROM schedule_fires f JOIN schedules s USING (schedule_id)"
        f" LEFT JOIN job_batches b ON b.batch_id = f.batch_id WHERE {window} ORDER BY f.due_at, s.name",
    )
    batches = rows(
        dsn,
        "SELECT schedule_name, scheduled_for FROM job_batches"
        f" WHERE scheduled_for BETWEEN '{first_due.isoformat()}' AND '{last_due.isoformat()}'",
    )
    per_due_time = Counter((b["schedule_name"], b["scheduled_for"]) for b in batches)
    print(f"{'due (UTC)':<9} {'schedule':<13} {'outcome':<16} {'node':<24} {'batch':<12} {'lag s':>6}  detail")
    for f in fires:
        lag = f"{f['lag']:.3f}" if f["lag"] is not None else "-"
        print(f"{f['due_at']:%H:%M}     {f['name']:<13} {f['outcome']:<16} {f['node']:<24} "
              f"{f['batch_id'] or '-':<12} {lag:>6}  {f['detail'] or ''}")  # fmt: skip
    problems = []
    minutes = round((last_due - first_due).total_seconds() / 60) + 1
    for name in ("every-minute", "slow-skip"):
        dealt = [f for f in fires if f["name"] == name]
        if len(dealt) != minutes:
            problems.append(f"{name}: {len(dealt)} due times recorded, expected {minutes}")
    doubled = [key for key, count in per_due_time.items() if count != 1]
    if doubled:
        problems.append(f"due times with more than one batch: {doubled}")
    slow = [f["outcome"] for f in fires if f["name"] == "slow-skip"]
    if "skipped_overlap" not in slow:
        problems.append("slow-skip was never skipped although its batch runs for 2.5 minutes")
    for f in fires:  # every batch is visible on both nodes with its schedule
        if f["batch_id"]:
            for node in nodes:
                shown = get_json(f"{node}/api/collectors/runs/batch/{f['batch_id']}")["schedule"]
                if shown is None or shown["name"] != f["name"]:
                    problems.append(f"{node} shows batch {f['batch_id']} with schedule {shown}")
    fired = [f for f in fires if f["outcome"] == "fired"]
    lags = sorted(float(f["lag"]) for f in fired)
    by_node = Counter(f["node"] for f in fires)
    print(f"\n{len(fired)} batches for {len(fires)} due times over {minutes} minutes; per due time: "
          f"{sorted(set(per_due_time.values()))}; skipped_overlap: {slow.count('skipped_overlap')}")  # fmt: skip
    if lags:
        median = lags[len(lags) // 2]
        print(f"lag from due time to batch: min {lags[0]:.3f} s, median {median:.3f} s, max {lags[-1]:.3f} s")
    print("due times dealt with per node: " + ", ".join(f"{node} {count}" for node, count in sorted(by_node.items())))
    for problem in problems:
        print("PROBLEM: " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
