"""Statements prepared once per session: a statement that costs PostgreSQL more to parse and
plan than to run (the batch and job bodies of server/runs/body_sql.py: bench/bodies.py measures
it) is prepared on a session the first time that session runs it, and then executed by name
with its parameters. Prepared statements belong to the session, not to a transaction: a
rollback keeps them, and a new connection starts without any."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from typing import Any


@functools.lru_cache(maxsize=64)
def prepared_forms(name: str, sql: str) -> tuple[str, str]:
    """``PREPARE name AS sql`` and the ``EXECUTE`` that runs it, for ``sql`` whose parameters are
    psycopg2's ``%s`` placeholders (the EXECUTE takes the same parameters, in the same order)."""
    parts = sql.split("%s")
    assert "%" not in "".join(parts), "only %s placeholders in a statement to prepare"
    numbered = "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]
    arguments = len(parts) - 1
    execute = f"EXECUTE {name}({', '.join(['%s'] * arguments)})" if arguments else f"EXECUTE {name}"
    return f"PREPARE {name} AS {numbered}", execute


# The names prepared on each pooled session (its psycopg2 connection), forgotten with it.
_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


async def execute_prepared(cur: Any, name: str, sql: str, params: Sequence[Any]) -> None:
    """Run ``sql`` on the pooled cursor ``cur`` as the prepared statement ``name``, preparing it
    first if this session has not yet (``name`` stands for this ``sql`` in every session)."""
    prepare, execute = prepared_forms(name, sql)
    names = _PREPARED.setdefault(cur.connection.raw, set())
    if name not in names:
        await cur.execute(prepare)
        names.add(name)
    await cur.execute(execute, params)
