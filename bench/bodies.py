"""What a batch's GET body costs to read and build, per read, both ways the code base has built it:
the rows read (every column) and shaped and encoded in Python (tests/support/run_bodies.py, the
copy the tests hold PostgreSQL's to), or the JSON text built by PostgreSQL in the reading
statement (server/runs/body_sql.py, what every batch and job body is now); the client's CPU
(this thread) and the CPU of its PostgreSQL backend, for batches of 1 and of 8 jobs, alternating:

    python bench/bodies.py --reads 500 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import fanout
import harness
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, as the tests import it

from server.runs import body_sql
from server.runs import store as runs
from tests.support import run_bodies as python_shapes


def new_batch(cur: Any, jobs: int) -> str:
    cur.execute(
        "INSERT INTO job_batches (batch_id) VALUES ('bc_' || lpad((random()*1e8)::int::text, 8, '0'))"
        " RETURNING batch_id"
    )
    batch_id: str = cur.fetchone()[0]
    for position in range(jobs):
        cur.execute(
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name, position, status, progress_percent, message)"
            " VALUES ('de_' || lpad((random()*1e8)::int::text, 8, '0'), %s, 'demo', 'Demo collector', %s, 'running',"
            " 40, 'page 4 of 10: 4,000 devices')",
            (batch_id, position),
        )
    return batch_id


def python_read(cur: Any, batch_id: str) -> bytes:
    cur.execute(*runs.batch_rows_statement(batch_id=batch_id))
    found = runs.split_batch_rows([column.name for column in cur.description], cur.fetchall())
    assert found is not None
    return json.dumps(python_shapes.batch_json(*found)).encode()


def sql_read(cur: Any, batch_id: str) -> bytes:
    cur.execute(*body_sql.bodies_statement(batch_id=batch_id))
    return str(cur.fetchone()[0][0][3]).encode()  # the batch's fields come first, its body fourth


def sql_prepared_read(cur: Any, batch_id: str) -> bytes:
    """As the LISTEN connection reads it (server/realtime/listener.py prepares what it reads)."""
    cur.execute("EXECUTE bench_bodies(%s)", (batch_id,))
    return str(cur.fetchone()[0][0][3]).encode()  # the batch's fields come first, its body fourth


def measure(cur: Any, backend: int, read: Any, batch_id: str, reads: int) -> tuple[float, float]:
    """Microseconds of this thread's CPU and of the backend's per read."""
    read(cur, batch_id)  # warm
    own, pg = time.thread_time(), fanout.cpu_seconds(backend)
    for _ in range(reads):
        read(cur, batch_id)
    return 1e6 * (time.thread_time() - own) / reads, 1e6 * (fanout.cpu_seconds(backend) - pg) / reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load = [os.getloadavg()[0]]
    results: dict[tuple[int, str], list[tuple[float, float]]] = {}
    with harness.database() as dsn, contextlib.closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = int(cur.fetchone()[0])
            batches = {jobs: new_batch(cur, jobs) for jobs in (1, 8)}
            cur.execute("PREPARE bench_bodies AS " + body_sql.BY_BATCH_ID.replace("%s", "$1"))
        cursor = conn.cursor()
        for _ in range(args.repeat):
            for jobs, batch_id in batches.items():
                for name, read in (
                    ("python", python_read),
                    ("sql", sql_read),
                    ("sql, prepared", sql_prepared_read),
                ):
                    results.setdefault((jobs, name), []).append(measure(cursor, backend, read, batch_id, args.reads))
                    load.append(os.getloadavg()[0])
    print(
        f"µs of CPU per read of a batch's GET body ({args.reads} reads a round;"
        f" load average {min(load):.1f}-{max(load):.1f}):"
    )
    print(f"{'jobs':>4} {'built by':>13} {'client':>16} {'PostgreSQL':>16} {'together':>16}")
    for (jobs, name), figures in results.items():
        own, pg = [f[0] for f in figures], [f[1] for f in figures]
        both = [a + b for a, b in figures]
        print(
            f"{jobs:>4} {name:>13} {min(own):>7.0f} to {max(own):<5.0f} {min(pg):>7.0f} to {max(pg):<5.0f}"
            f" {min(both):>7.0f} to {max(both):<5.0f}"
        )


if __name__ == "__main__":
    main()
