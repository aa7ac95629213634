"""``collector-hub serve``: the HTTP server (with a runner inside unless turned off), one
process or ``--workers N`` sharing the port.

The server itself (aiohttp's web framework and every feature's routes: most of the CPU this
command spends starting) is imported only once the settings, the event loop and the port are
known to be good, so a refused start says why at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import socket
import sys
from typing import Any

import psycopg2

from server.cli.console import configure_logging, settings_from
from server.cli.event_loop import EventLoopUnavailable, new_event_loop, resolve_event_loop
from server.cli.one_line_errors import database_unreachable, fail
from server.cli.workers import bind_socket, run_workers
from server.db import database
from server.security.tls import server_ssl_context
from server.settings import Settings


def run(args: argparse.Namespace) -> int:
    settings = settings_from(
        args, "host", "port", "database_url", "data_dir", "allow_insecure", "tls_cert", "tls_key", "shutdown_timeout",
        "workers", "loop",
    )  # fmt: skip
    configure_logging(settings)
    try:  # a loop that cannot be had stops the start before anything else
        loop = resolve_event_loop(settings.loop)
    except EventLoopUnavailable as exc:
        return fail("serve", str(exc), 2)
    # The port first: a start that cannot listen must fail before anything runs. Otherwise the
    # runner would claim queued jobs, start their collectors, then kill and requeue them when
    # the bind failed (a collector with side effects would run twice: ARCHITECTURE rule 12).
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:  # e.g. the port is taken, or the address is not this machine's
        return _cannot_listen(settings, exc)
    with sock:
        # The certificate before the database and the server: a file that cannot be loaded
        # refuses the start at once.
        ssl_context = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            ssl_context = server_ssl_context(settings.tls_cert, settings.tls_key)
        setup = importlib.import_module("server.security.setup")
        try:
            setup.check_protected_mode_before_serving(settings)
        except psycopg2.OperationalError as exc:
            return database_unreachable("serve", exc)
        except database.EmbeddedDatabaseError as exc:
            return fail("serve", str(exc))
        if settings.workers > 1:
            return _serve_workers(settings, ssl_context, sock, loop)
        return _serve_one(settings, ssl_context, sock, loop)


def _cannot_listen(settings: Settings, exc: OSError) -> int:
    reason = exc.strerror or str(exc)
    print(f"collector-hub serve: error: cannot listen on {settings.host}:{settings.port}: {reason}", file=sys.stderr)
    return 1


def _serve_one(settings: Settings, ssl_context: Any, sock: socket.socket, loop: str) -> int:
    app = importlib.import_module("server.app").create_app(settings)
    where = "embedded PostgreSQL in " + str(settings.data_dir) if settings.uses_embedded_database else "PostgreSQL"
    scheme = "https" if ssl_context else "http"
    logging.getLogger("collector_hub").info(
        "serving on %s://%s:%s using %s, on %s's event loop", scheme, settings.host, settings.port, where, loop
    )
    try:
        # SIGTERM: stop listening, run on_shutdown (live streams are closed there), wait up to
        # shutdown_timeout for requests in flight, then the cleanup contexts in reverse
        # (the runner hands its jobs back, then the database closes).
        importlib.import_module("aiohttp.web").run_app(
            app, sock=sock, print=None, access_log=None,
            shutdown_timeout=settings.shutdown_timeout, ssl_context=ssl_context, loop=new_event_loop(loop),
        )  # fmt: skip
    except psycopg2.OperationalError as exc:
        return database_unreachable("serve", exc)
    except database.EmbeddedDatabaseError as exc:
        return fail("serve", str(exc))
    return 0


def _serve_workers(settings: Settings, ssl_context: Any, sock: socket.socket, loop: str) -> int:
    """N processes on one port (server/cli/workers.py). The master starts the embedded PostgreSQL
    (if no URL is set) and migrates once, so the workers share one server."""
    embedded = None
    try:
        if settings.database_url is None:
            embedded = database.EmbeddedPostgres(settings.data_dir)
            settings = dataclasses.replace(settings, database_url=embedded.start())
        assert settings.database_url is not None
        database.apply_migrations(settings.database_url)
        importlib.import_module("server.app")  # once, here: the forked workers share it
        return run_workers(
            settings, lambda worker, worker_sock: _serve_one(worker, ssl_context, worker_sock, loop), sock
        )
    except psycopg2.OperationalError as exc:
        return database_unreachable("serve", exc)
    except database.EmbeddedDatabaseError as exc:
        return fail("serve", str(exc))
    finally:
        if embedded is not None:
            embedded.stop()
