"""The application factory and the lifetime of its resources.

``create_app`` adds the parts in ``PARTS``, in that order, and that order is the whole story:
cleanup contexts start in it and stop in reverse, middlewares run in it, and security wraps
the routes added before it. Each part says why it stands where it does, what its startup
reads (``needs``) and what its startup makes (``starts``); ``check_start_order`` refuses an
order in which a startup would read a key that nothing before it has made.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence, Set
from typing import Any

from aiohttp import web

from collectors.registry import load_registry
from server import keys
from server.api.middleware import json_errors
from server.api.validation import reject_unknown_query_parameters
from server.audit.middleware import record_refusals
from server.audit.routes import routes as audit_routes
from server.db import database
from server.health import keys as health_keys
from server.health.keys import HEALTH_EVALUATOR
from server.health.setup import setup_health
from server.inventory.routes import routes as inventory_routes
from server.joblogs.live import LOGS
from server.joblogs.routes import routes as log_routes
from server.joblogs.stream import routes as log_stream_routes
from server.keys import DATABASE_URL, POOL, REGISTRY, SETTINGS
from server.observability.access_log import access_log, add_request_id_header
from server.realtime import keys as realtime_keys
from server.realtime.keys import HUB
from server.realtime.setup import setup_realtime
from server.realtime.sources import LiveSources
from server.runner import keys as runner_keys
from server.runner.housekeeping import housekeeping_ctx
from server.runner.keys import RUNNER
from server.runner.runner import Runner
from server.runs.history_routes import routes as history_routes
from server.runs.live import BATCHES
from server.runs.rerun_routes import routes as rerun_routes
from server.runs.routes import routes as run_routes
from server.runs.stats_routes import routes as stats_routes
from server.schedules import keys as schedules_keys
from server.schedules.keys import SCHEDULER
from server.schedules.setup import setup_schedules
from server.security import keys as security_keys
from server.security.keys import AUTHENTICATOR, RATE_LIMITER
from server.security.routes import routes as me_routes
from server.security.setup import protected_mode_ctx, setup_security
from server.service.doc_routes import setup_docs_routes
from server.service.health_routes import setup_health_routes
from server.service.metrics_route import setup_metrics_routes
from server.service.static_routes import setup_static_routes
from server.settings import Settings
from server.variances.live import VARIANCES
from server.variances.setup import setup_variances
from server.webhooks import keys as webhooks_keys
from server.webhooks.keys import WEBHOOK_DISPATCHER
from server.webhooks.setup import setup_webhooks

log = logging.getLogger(__name__)

Key = web.AppKey[Any]
# Each key by its name in server/keys.py or its package's keys.py, for messages (aiohttp keeps a
# key's own name private).
KEY_MODULES = (keys, health_keys, realtime_keys, runner_keys, schedules_keys, security_keys, webhooks_keys)
KEY_NAMES: dict[Key, str] = {
    key: name.lower() for module in KEY_MODULES for name, key in vars(module).items() if isinstance(key, web.AppKey)
}


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the embedded PostgreSQL if no URL is set, migrate, open the pool."""
    settings = app[SETTINGS]
    async with database.serving_database(
        settings.database_url, settings.data_dir, settings.db_pool_min, settings.db_pool_max
    ) as (dsn, pool):
        app[DATABASE_URL] = dsn
        app[POOL] = pool
        yield


async def runner_ctx(app: web.Application) -> AsyncIterator[None]:
    """The in-process runner: claims queued jobs and runs each collector in its own process."""
    settings = app[SETTINGS]
    if not settings.run_collectors:
        yield
        return
    runner = Runner(app[POOL], app[DATABASE_URL], app[REGISTRY], settings)
    app[RUNNER] = runner
    app[HUB].wake_ups.when_job_queued(runner.wake)  # a NOTIFY says a job was queued: claim now
    app[HUB].wake_ups.when_job_ended_by_id(runner.job_ended)  # cancelled elsewhere: stop its process now
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()


@dataclasses.dataclass(frozen=True)
class Part:
    """One part of the app, as ``create_app`` adds it."""

    name: str
    add: Callable[[web.Application], None]
    why: str  # why it stands where it does in PARTS
    needs: tuple[Key, ...] = ()  # read by its startup (cleanup context)
    starts: tuple[Key, ...] = ()  # made by its startup, for the parts after it


def _context(ctx: Callable[[web.Application], AsyncIterator[None]]) -> Callable[[web.Application], None]:
    return lambda app: app.cleanup_ctx.append(ctx)


def _routes(table: web.RouteTableDef) -> Callable[[web.Application], None]:
    def add(app: web.Application) -> None:
        app.add_routes(table)

    return add


def _middleware(middleware: Any) -> Callable[[web.Application], None]:
    return lambda app: app.middlewares.append(middleware)


# fmt: off
PARTS: tuple[Part, ...] = (
    Part("database", _context(database_ctx),
         "first: every startup after it reads the pool",
         needs=(SETTINGS,), starts=(DATABASE_URL, POOL)),
    Part("protected mode", _context(protected_mode_ctx),
         "before anything runs: no runner, dispatcher or listener on a network without authentication",
         needs=(SETTINGS, AUTHENTICATOR, POOL)),
    Part("realtime", lambda app: setup_realtime(app, LiveSources(batches=BATCHES, logs=LOGS, variances=VARIANCES)),
         "LISTEN before the runner's and the dispatcher's first claim: work queued in between is either"
         " seen by that claim or NOTIFYs them (they register their wake-ups with the hub)",
         needs=(SETTINGS, POOL, DATABASE_URL), starts=(HUB,)),
    Part("runner", _context(runner_ctx),
         "after realtime (see there)",
         needs=(SETTINGS, POOL, DATABASE_URL, REGISTRY, HUB), starts=(RUNNER,)),
    Part("housekeeping", _context(housekeeping_ctx),
         "after the database; in every process, runner or not (a queue no runner serves must still fail)",
         needs=(SETTINGS, POOL)),
    Part("run routes", _routes(run_routes), "any place before security"),
    Part("history routes", _routes(history_routes), "any place before security"),
    Part("rerun routes", _routes(rerun_routes), "any place before security"),
    Part("stats routes", _routes(stats_routes), "any place before security"),
    Part("log routes", _routes(log_routes), "any place before security"),
    Part("log stream routes", _routes(log_stream_routes), "any place before security"),
    Part("webhooks", setup_webhooks,
         "after realtime, like the runner",
         needs=(SETTINGS, POOL, HUB), starts=(WEBHOOK_DISPATCHER,)),
    Part("health", setup_health,
         "after webhooks: its evaluator wakes the dispatcher when it writes an alert; after realtime, for the"
         " job-ended wake-up",
         needs=(SETTINGS, POOL, REGISTRY, HUB, WEBHOOK_DISPATCHER), starts=(HEALTH_EVALUATOR,)),
    Part("inventory routes", _routes(inventory_routes), "any place before security"),
    Part("variances", setup_variances, "any place before security"),
    Part("schedules", setup_schedules,
         "after the runner, so it stops first: nothing is fired while the runner hands its jobs back at"
         " shutdown; before security, for its routes",
         needs=(SETTINGS, POOL, REGISTRY), starts=(SCHEDULER,)),
    Part("me route", _routes(me_routes), "any place before security"),
    Part("health routes", setup_health_routes, "any place before security"),
    Part("static routes", setup_static_routes, "any place before security"),
    Part("docs routes", setup_docs_routes, "any place before security"),
    Part("metrics route", setup_metrics_routes, "any place before security"),
    Part("audit routes", _routes(audit_routes), "any place before security"),
    Part("audit refusals", _middleware(record_refusals),
         "right before security, so its middleware runs outside the role check: a 401 or 403 to a change is"
         " recorded, with the actor security named"),
    Part("security", setup_security,
         "after every route: its role, origin and rate-limit middlewares and CORS cover every route added above",
         needs=(SETTINGS,), starts=(RATE_LIMITER,)),
    Part("query parameters", _middleware(reject_unknown_query_parameters),
         "after security, so its middleware runs inside it: a caller without credentials gets 401, not a list"
         " of the parameters a route accepts"),
)
# fmt: on


def check_start_order(parts: Sequence[Part], present: Set[Key]) -> None:
    """Raise if a part's startup needs a key that is neither ``present`` once the app is built
    nor started by a part before it."""
    started: set[Key] = set()
    for part in parts:
        missing = [key for key in part.needs if key not in present and key not in started]
        if missing:
            names = ", ".join(KEY_NAMES.get(key, repr(key)) for key in missing)
            raise RuntimeError(f"the {part.name} part starts before anything makes {names}")
        started.update(part.starts)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[access_log, json_errors], client_max_size=settings.max_body_bytes)
    app.on_response_prepare.append(add_request_id_header)
    app[SETTINGS] = settings
    app[REGISTRY] = load_registry(settings.collectors_file, vendor_retries=settings.vendor_retries)
    for part in PARTS:
        part.add(app)
    check_start_order(PARTS, {key for part in PARTS for key in part.needs if key in app})
    return app
