"""Stored API keys for tests: created straight in the database, as `collector-hub keys create` does."""

from __future__ import annotations

import psycopg2

from server.security.api_keys import create_key


def stored_key(database_url: str, name: str, role: str = "admin") -> str:
    """A new stored key named ``name`` with ``role``; the key itself (shown once, as the CLI shows it)."""
    conn = psycopg2.connect(database_url)
    try:
        conn.autocommit = True
        return create_key(conn, name, role)[0]
    finally:
        conn.close()
