"""Housekeeping, in every server and runner process: remove job log lines and audit rows past
their retention, fail queued jobs that no live runner can take, forget runners long gone.

Every process runs it and that is safe: each step is an idempotent statement (a line deleted
twice, a job failed once: the second attempt finds nothing), and the log deletes go in small
batches, each its own short statement, so no table stays locked for long.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator

import aiopg
from aiohttp import web

from server.audit import store as audit
from server.background import BackgroundLoop
from server.joblogs import store as logs
from server.keys import POOL, SETTINGS
from server.runs import runners
from server.settings import Settings

log = logging.getLogger(__name__)

# Log lines deleted per statement; a full batch means there may be more, so the loop goes on.
RETENTION_BATCH = 5000
# The most often housekeeping polls; short unclaimable timeouts poll more often.
MAX_INTERVAL_SECONDS = 60.0
# A runner silent this long is removed from GET /api/runners.
FORGET_RUNNERS_AFTER_SECONDS = 7 * 24 * 3600.0


class Housekeeping:
    def __init__(self, pool: aiopg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        interval = min(MAX_INTERVAL_SECONDS, settings.unclaimable_timeout / 4)
        self._loop = BackgroundLoop("housekeeping", self._tick, interval=interval)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop(5.0)

    async def _tick(self) -> bool:
        failed = await runners.fail_unclaimable_jobs(self._pool, self._settings.unclaimable_timeout)
        if failed:
            log.warning("failed job(s) no live runner could take: %s", ", ".join(failed))
        await runners.forget_old_runners(self._pool, FORGET_RUNNERS_AFTER_SECONDS)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self._settings.log_retention_days)
        deleted = await logs.delete_old_lines(self._pool, cutoff, RETENTION_BATCH)
        if deleted:
            log.info("removed %d job log line(s) older than %g days", deleted, self._settings.log_retention_days)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self._settings.audit_retention_days)
        audit_deleted = await audit.delete_older_than(self._pool, cutoff, RETENTION_BATCH)
        if audit_deleted:
            log.info("removed %d audit row(s) older than %g days", audit_deleted, self._settings.audit_retention_days)
        return RETENTION_BATCH in (deleted, audit_deleted)  # more to remove: go again now


async def housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    housekeeping = Housekeeping(app[POOL], app[SETTINGS])
    housekeeping.start()
    try:
        yield
    finally:
        await housekeeping.stop()
