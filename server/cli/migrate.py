"""``collector-hub migrate``: apply the pending ``sql/`` migrations and exit."""

from __future__ import annotations

import argparse

import psycopg2

from server.cli.console import configure_logging, settings_from
from server.cli.one_line_errors import database_unreachable, fail
from server.db import database


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, "database_url", "data_dir")
    configure_logging(settings)
    try:
        with database.database_url_for(settings.database_url, settings.data_dir) as dsn:
            applied = database.apply_migrations(dsn)
    except psycopg2.OperationalError as exc:
        return database_unreachable("migrate", exc)
    except database.EmbeddedDatabaseError as exc:
        return fail("migrate", str(exc))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0
