"""A collector runner outside the app under test, as `collector-hub runner` makes one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from collectors.registry import load_registry
from server.db.database import create_pool
from server.runner.runner import Runner
from server.settings import Settings
from tests.support.settings import replace_settings


@asynccontextmanager
async def started_runner(settings: Settings, database_url: str, **changes: Any) -> AsyncIterator[Runner]:
    """A standalone Runner with its own pool, as `collector-hub runner` makes one."""
    runner_settings = replace_settings(settings, **changes)
    async with create_pool(database_url, 1, 4) as pool:
        runner = Runner(
            pool,
            database_url,
            load_registry(runner_settings.collectors_file, vendor_retries=runner_settings.vendor_retries),
            runner_settings,
        )
        await runner.start()
        try:
            yield runner
        finally:
            await runner.stop()
