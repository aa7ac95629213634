"""Statements prepared once per session (server/db/prepared.py): the batch and job bodies cost
PostgreSQL more to parse and plan than to run (bench/bodies.py), so each pooled session
prepares them once."""

from __future__ import annotations

from server.db import database
from server.db.prepared import execute_prepared, prepared_forms
from server.keys import POOL


def test_the_forms_number_the_placeholders() -> None:
    assert prepared_forms("two", "SELECT %s::int + %s::int") == (
        "PREPARE two AS SELECT $1::int + $2::int",
        "EXECUTE two(%s, %s)",
    )
    assert prepared_forms("none", "SELECT 1") == ("PREPARE none AS SELECT 1", "EXECUTE none")


async def test_a_statement_is_prepared_once_on_a_session_and_then_executed(client):
    pool = client.app[POOL]
    async with database.cursor(pool, tuples=True) as cur:
        for n in range(3):  # a second PREPARE of the name would fail: it exists
            await execute_prepared(cur, "test_add_one", "SELECT %s::int + 1", (n,))
            assert await cur.fetchall() == [(n + 1,)]
        await cur.execute("SELECT statement FROM pg_prepared_statements WHERE name = 'test_add_one'")
        assert [row[0] for row in await cur.fetchall()] == ["PREPARE test_add_one AS SELECT $1::int + 1"]
