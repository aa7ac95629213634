"""Jobs ending at once in two transactions never deadlock on the finish metrics.

Every job that ends is counted into its (collector, status) row of ``job_finish_metrics`` by a
trigger (docs/ARCHITECTURE.md, "Where to find": the Prometheus metrics). Two transactions that
end jobs of the same collectors in opposite orders (two batch cancels, a cancel and the
watchdog) used to lock those rows in opposite orders, and PostgreSQL aborted one of them: a
500 for the cancel. The trigger now takes one transaction-level lock before it touches the
rows, so the second transaction waits for the first instead.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg2
import psycopg2.errors

from tests.support.runs import trigger


def _connect(database_url: str) -> Any:
    conn = psycopg2.connect(database_url)
    with conn.cursor() as cur:
        cur.execute("SET lock_timeout = '20s'")  # a wait that never ends fails the test, not the suite
        cur.execute("SET deadlock_timeout = '50ms'")  # find a deadlock at once
    conn.commit()
    return conn


def _cancel(conn: Any, job_id: str) -> None:
    with conn.cursor() as cur:
        cur.execute("UPDATE job_runs SET status = 'cancelled', ended_at = now() WHERE job_id = %s", (job_id,))


async def test_two_transactions_ending_jobs_in_opposite_orders_both_commit(client, database_url: str, db) -> None:  # type: ignore[no-untyped-def]
    # Two batches of the same two collectors; each transaction ends its batch's jobs, in
    # opposite collector orders, the second one's first row while the first is between rows.
    first = [job["job_id"] for job in (await trigger(client, "demo", "ninja"))["collectors"]]
    second = [job["job_id"] for job in (await trigger(client, "demo", "ninja"))["collectors"]]
    one, two = _connect(database_url), _connect(database_url)
    errors: list[BaseException] = []
    try:
        _cancel(one, first[0])  # demo's row is now held by one
        second_started = threading.Event()

        def other() -> None:
            try:
                second_started.set()
                _cancel(two, second[1])  # ninja's row by two (or, fixed: two waits here)
                _cancel(two, second[0])  # demo's row: waits for one
                two.commit()
            except BaseException as exc:  # reported below, after the join
                errors.append(exc)
                two.rollback()

        thread = threading.Thread(target=other)
        thread.start()
        second_started.wait()
        # Cross over once two is waiting for a lock: before the fix, for demo's row, which one
        # holds (after taking ninja's); with it, for the lock the trigger takes first.
        with db.cursor() as cur:
            for _ in range(2000):
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid = %s",
                    (two.get_backend_pid(),),
                )
                if cur.fetchone()[0]:
                    break
                cur.execute("SELECT pg_sleep(0.01)")
            else:
                raise AssertionError("the second transaction never waited for a lock")
        try:
            _cancel(one, first[1])  # ninja's row: held by two before the fix
            one.commit()
        except psycopg2.errors.DeadlockDetected as exc:
            errors.append(exc)
            one.rollback()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        one.close()
        two.close()
    assert errors == []
    with db.cursor() as cur:
        cur.execute("SELECT collector, finished FROM job_finish_metrics WHERE status = 'cancelled' ORDER BY collector")
        assert cur.fetchall() == [("demo", 2), ("ninja", 2)]
