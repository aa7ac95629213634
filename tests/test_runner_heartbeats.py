"""Runner heartbeats (GET /api/runners) and the unclaimable timeout: a queued job whose
collector no live runner offers fails with an error that says so, instead of waiting forever."""

from __future__ import annotations

from collectors.contract import RUNNER_LIVE_SECONDS
from server.db.database import create_pool
from server.runner.housekeeping import Housekeeping
from server.runs import runners
from tests.support.conditions import eventually
from tests.support.runner import started_runner
from tests.support.runs import get_json
from tests.support.settings import replace_settings


def queued_job(db, job_id, collector, age_seconds):
    with db.cursor() as cur:
        batch_id = "bc_" + job_id[3:]
        cur.execute(
            "INSERT INTO job_batches (batch_id, started_at) VALUES (%s, now() - make_interval(secs => %s))",
            (batch_id, age_seconds),
        )
        cur.execute(
            "INSERT INTO job_runs (job_id, batch_id, collector, job_name, started_at)"
            " VALUES (%s, %s, %s, %s, now() - make_interval(secs => %s))",
            (job_id, batch_id, collector, f"{collector}-collector", age_seconds),
        )


def job_row(db, job_id):
    with db.cursor() as cur:
        cur.execute("SELECT status, error FROM job_runs WHERE job_id = %s", (job_id,))
        return cur.fetchone()


async def test_a_runner_is_listed_while_it_beats_and_marked_when_it_stops(client, settings, database_url):
    async with started_runner(settings, database_url, runner_id="beating-runner", runner_concurrency=3):

        async def listed():
            body = await get_json(client, "/api/runners")
            return [r for r in body["runners"] if r["runner_id"] == "beating-runner"]

        (runner,) = await eventually(listed, what="the runner's first heartbeat")
        assert runner["live"] is True and runner["stopped_at"] is None
        assert runner["capacity"] == 3 and "demo" in runner["collectors"]
    (runner,) = await listed()
    assert runner["live"] is False and runner["stopped_at"] is not None


async def test_a_job_no_live_runner_offers_fails_and_says_why(db, database_url, settings):
    with db.cursor() as cur:
        cur.execute("DELETE FROM runners")
        cur.execute("DELETE FROM job_batches")
    queued_job(db, "no_00000001", "nobody", 3600)  # an hour in the queue, nothing offers it
    queued_job(db, "of_00000002", "offered", 3600)  # as old, but a live runner offers it
    queued_job(db, "no_00000003", "nobody", 5)  # not waited long enough yet
    async with create_pool(database_url, 1, 2) as pool:
        await runners.record_heartbeat(pool, "elsewhere", "host-b", ["offered"], 1, [])
        keeper = Housekeeping(pool, replace_settings(settings, unclaimable_timeout=60.0))
        keeper.start()
        try:
            await eventually(lambda: _status(db, "no_00000001", "failed"), what="the unclaimable job to fail")
        finally:
            await keeper.stop()
    _, error = job_row(db, "no_00000001")
    assert "No live runner offered this collector for 60 seconds" in error
    assert "COLLECTOR_HUB_UNCLAIMABLE_TIMEOUT" in error
    assert job_row(db, "of_00000002")[0] == "queued"
    assert job_row(db, "no_00000003")[0] == "queued"


async def _status(db, job_id, status):
    return job_row(db, job_id)[0] == status


def runner_heard_from(db, runner_id, seconds_ago, stopped_seconds_ago=None):
    """Age a runner's last heartbeat (and its stop) as a loaded machine would: late, not gone."""
    with db.cursor() as cur:
        cur.execute(
            "UPDATE runners SET heartbeat_at = clock_timestamp() - make_interval(secs => %s),"
            " stopped_at = clock_timestamp() - make_interval(secs => %s) WHERE runner_id = %s",
            (seconds_ago, stopped_seconds_ago, runner_id),
        )


def failed_message(db, job_id):
    with db.cursor() as cur:
        cur.execute("SELECT status, message FROM job_runs WHERE job_id = %s", (job_id,))
        status, message = cur.fetchone()
    return message if status == "failed" else status


async def test_a_late_heartbeat_changes_neither_what_fails_nor_why(db, database_url):
    """COLLECTOR_HUB_UNCLAIMABLE_TIMEOUT may be as short as a heartbeat (10 s). A runner whose
    heartbeat is late (a loaded machine) is still live, as GET /api/runners says, for 30 s: it
    still takes the jobs it offers, and still explains the ones nobody can take."""
    with db.cursor() as cur:
        cur.execute("DELETE FROM runners")
        cur.execute("DELETE FROM job_batches")
    queued_job(db, "th_00000001", "threatlocker", 3600)  # nobody has its credentials
    queued_job(db, "ni_00000002", "ninja", 3600)  # the late runner offers it, and is busy
    late = RUNNER_LIVE_SECONDS - 5  # older than the timeout, but live
    async with create_pool(database_url, 1, 2) as pool:
        await runners.record_heartbeat(
            pool, "late", "host-a", ["ninja"], 1, ["ni_00000009"], without_credentials=["threatlocker"]
        )
        runner_heard_from(db, "late", late)
        assert [r["live"] for r in await runners.list_runners(pool)] == [True]
        assert await runners.fail_unclaimable_jobs(pool, 10.0) == ["th_00000001"]
    assert failed_message(db, "th_00000001") == "No live runner has threatlocker credentials"
    assert failed_message(db, "ni_00000002") == "queued"


async def test_a_runner_counts_while_it_was_live_within_the_timeout(db, database_url):
    """The check looks back over the timeout: a runner counts if it was live at any moment of it
    (a heartbeat within 30 s and not stopped then), and not once it has been gone for all of it."""
    with db.cursor() as cur:
        cur.execute("DELETE FROM runners")
        cur.execute("DELETE FROM job_batches")
    cases = {  # runner: (heartbeat seconds ago, stopped seconds ago, its queued job's outcome)
        "stopped-just-now": (8, 5, "queued"),
        "stopped-before": (20, 15, "No live runner offered this collector"),
        "silent-then-within": (RUNNER_LIVE_SECONDS + 5, None, "queued"),
        "silent-for-all-of-it": (RUNNER_LIVE_SECONDS + 15, None, "No live runner offered this collector"),
    }
    async with create_pool(database_url, 1, 2) as pool:
        for n, (runner_id, (heard, stopped, _)) in enumerate(cases.items()):
            queued_job(db, f"c{n}_0000000{n}", f"only-{runner_id}", 3600)
            await runners.record_heartbeat(pool, runner_id, "host-a", [f"only-{runner_id}"], 1, [])
            runner_heard_from(db, runner_id, heard, stopped)
        await runners.fail_unclaimable_jobs(pool, 10.0)
    for n, (_, _, outcome) in enumerate(cases.values()):
        assert failed_message(db, f"c{n}_0000000{n}") == outcome
