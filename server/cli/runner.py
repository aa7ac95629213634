"""``collector-hub runner``: a runner on its own, without the HTTP server, so collectors can
run on other machines than the API (or more of them). Same database, same queue."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

import psycopg2

from collectors.registry import load_registry
from server.cli.console import configure_logging, settings_from
from server.cli.one_line_errors import database_unreachable
from server.db import database
from server.runner.housekeeping import Housekeeping
from server.runner.runner import Runner
from server.settings import Settings

log = logging.getLogger(__name__)


async def run_standalone_runner(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop the runner cleanly (its jobs go back to the
    queue). Uses COLLECTOR_HUB_DATABASE_URL, else the embedded PostgreSQL in the data
    directory (shared with a ``serve`` using the same directory)."""
    registry = load_registry(settings.collectors_file, vendor_retries=settings.vendor_retries)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with database.serving_database(
            settings.database_url, settings.data_dir, settings.db_pool_min, settings.db_pool_max
        ) as (dsn, pool):
            runner = Runner(pool, dsn, registry, settings)
            housekeeping = Housekeeping(pool, settings)
            await runner.start()
            housekeeping.start()
            try:
                await stop.wait()
                log.info("stopping the runner")
            finally:
                await housekeeping.stop()
                await runner.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(RuntimeError):
                loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, "database_url", "data_dir", "runner_concurrency", "runner_id", "collectors_file")
    configure_logging(settings)
    try:
        asyncio.run(run_standalone_runner(settings))
    except psycopg2.OperationalError as exc:
        return database_unreachable("runner", exc)
    return 0
