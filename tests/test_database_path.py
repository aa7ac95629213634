"""One way to the database: only server/db/database.py takes connections from the pool or
opens aiopg transactions, so the outage-to-503 mapping and the lock rule cannot be skipped."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THE_PATH = REPO / "server" / "db" / "database.py"
SOURCES = sorted(p for d in ("server", "collectors", "bench") for p in (REPO / d).rglob("*.py") if p != THE_PATH)

# app[POOL].acquire(), self._pool.acquire(), pool.acquire(); cur.begin(), conn.begin().
BYPASSES = re.compile(r"pool\]?\.acquire\(|\.begin\(\)", re.IGNORECASE)
# A private alias (``_cursor = database.cursor``) reads like a second path; call the helpers.
ALIASES = re.compile(r"^_\w+\s*=\s*database\.\w+", re.MULTILINE)


def bypasses(text: str) -> list[str]:
    return [m.group(0) for m in BYPASSES.finditer(text)] + [m.group(0) for m in ALIASES.finditer(text)]


def test_the_guard_sees_each_way_around() -> None:
    assert bypasses("async with app[POOL].acquire() as conn:") == ["POOL].acquire("]
    assert bypasses("async with self._pool.acquire() as conn:") == ["pool.acquire("]
    assert bypasses("async with cur.begin():") == [".begin()"]
    assert bypasses("_cursor = database.cursor\n") == ["_cursor = database.cursor"]
    assert bypasses("async with database.transaction(pool) as cur:") == []


def test_only_database_py_reaches_the_pool() -> None:
    found = [f"{path.relative_to(REPO)}: {hit}" for path in SOURCES for hit in bypasses(path.read_text())]
    assert found == [], "use server.db.database.cursor/transaction (extend them if something is missing)"
