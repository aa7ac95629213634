"""The API through a database outage: dead pooled connections are replaced, not served as
500s, and an unreachable database is a 503 JSON error that says to try again."""

from __future__ import annotations

import asyncio

import psycopg2
import pytest

from tests.support.conditions import eventually


def terminate_app_connections(db) -> int:
    with db.cursor() as cur:
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cur.fetchone()[0]


async def test_reads_survive_every_pooled_connection_being_killed(client, db):
    resp = await client.post("/api/collectors/run", json={"collectors": ["demo"]})
    batch_id = (await resp.json())["batch_id"]
    path = f"/api/collectors/runs/batch/{batch_id}"
    # Several requests at once so the pool holds several idle connections.
    assert {r.status for r in await asyncio.gather(*(client.get(path) for _ in range(6)))} == {200}
    assert terminate_app_connections(db) >= 2
    # Every pooled connection is dead now; reads are retried on a fresh one.
    for _ in range(6):
        resp = await client.get(path)
        assert resp.status == 200, await resp.text()
    resp = await client.post("/api/collectors/run", json={"collectors": ["demo"]})
    assert resp.status == 201


async def test_a_write_on_a_dead_connection_is_a_503_once_then_works(client, db):
    assert (await client.get("/api/collectors/history")).status == 200
    assert terminate_app_connections(db) >= 1
    statuses = []
    for _ in range(3):
        resp = await client.post("/api/collectors/run", json={"collectors": ["demo"]})
        statuses.append(resp.status)
        if resp.status == 503:
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json()) == {"error": "Database unavailable; try again shortly"}
    assert statuses[-1] == 201 and 500 not in statuses and statuses.count(503) <= 1


def allow_connections(admin_dsn: str, name: str, allow: bool) -> None:
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allow).lower()}')
    finally:
        conn.close()


@pytest.fixture
def refused(admin_dsn, db):
    """A switch that makes PostgreSQL refuse new connections to the test database."""
    with db.cursor() as cur:
        cur.execute("SELECT current_database()")
        name = cur.fetchone()[0]
    switch = lambda allow: allow_connections(admin_dsn, name, allow)  # noqa: E731
    try:
        yield switch
    finally:
        switch(True)


async def test_unreachable_database_is_503_json_and_recovers(client, db, refused):
    assert (await client.get("/api/collectors/history")).status == 200
    refused(False)
    terminate_app_connections(db)
    resp = await client.get("/api/collectors/history")
    assert resp.status == 503
    assert (await resp.json())["error"] == "Database unavailable; try again shortly"
    resp = await client.post("/api/collectors/run", json={"collectors": ["demo"]})
    assert resp.status == 503
    assert (await client.get("/readyz")).status == 503
    refused(True)

    async def answers() -> bool:
        return (await client.get("/api/collectors/history")).status == 200

    await eventually(answers, what="history answers again")
