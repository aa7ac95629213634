"""What a server process holds in PostgreSQL once it has started (docs/DEPLOYMENT.md,
Requirements): the pool's first connection and the LISTEN one, however many parts run a
statement as the app starts. The start-up statements and the background loops' first ticks take
turns (server/background.py, ``startup_turn``); before they did, every app opened a second pool
connection at start, the declared webhook receivers being written while the runner's (or, with
no runner, housekeeping's) first tick held the first."""

from __future__ import annotations

import pytest

from server.app import create_app
from server.background import startup_turn
from server.keys import POOL
from server.realtime.listen_connection import APPLICATION_NAME
from tests.support.conditions import eventually
from tests.support.settings import replace_settings


def backends(db) -> list[str]:  # type: ignore[no-untyped-def]
    """The application_name of every other session on the module's database: the app's."""
    with db.cursor() as cur:
        cur.execute(
            "SELECT application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY 1"
        )
        return [row[0] for row in cur.fetchall()]


@pytest.mark.parametrize("run_collectors", [True, False], ids=["with a runner", "api only"])
async def test_a_started_app_holds_two_connections_after_its_loops_first_ticks(
    aiohttp_client, settings, db, run_collectors: bool
) -> None:
    # The previous test's app has closed its connections; their backends may take a moment to go.
    await eventually(lambda: _async(backends(db) == []), what="no other session on the database")
    # Polls a minute apart: what is counted is the start, not a later poll that happens to come
    # while another loop's statement runs (docs/DEPLOYMENT.md: the pool grows with the load).
    app = create_app(
        replace_settings(
            settings,
            run_collectors=run_collectors,
            runner_poll_interval=60.0,
            webhook_poll_interval=60.0,
            schedule_poll_interval=60.0,
            health_interval=60.0,
        )
    )
    await aiohttp_client(app)
    # Every loop of the app started as the app did, and waits for its first tick in turn (FIFO):
    # this turn comes once they have all had theirs.
    async with startup_turn():
        pass
    assert app[POOL].size == 1, "the pool opened a second connection as the app started"
    assert backends(db) == ["", APPLICATION_NAME]  # the pool's one and the LISTEN one


async def _async(value: bool) -> bool:
    return value
