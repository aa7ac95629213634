"""``collector-hub``: serve, migrate, a standalone runner, API keys, and the collector-side
commands (report progress, run collectors from cron, watch a batch).

This module only parses the command line: each sub-command lives in its own module of this
package, imported when it is chosen, so that ``collector-hub progress`` (run by shell
collectors for every page) does not pay for importing the server.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from collectors.contract import (
    DEFAULT_PRIORITY,
    GRANTABLE_ROLES,
    PRIORITIES,
    SCHEDULE_CATCH_UP_POLICIES,
    SCHEDULE_OVERLAP_POLICIES,
)
from server import __version__

SERVER_URL_ENV = "COLLECTOR_HUB_URL"
# The key sent as X-API-Key when --api-key is not given (an option would show in ps).
API_KEY_ENV = "COLLECTOR_HUB_API_KEY"
DEFAULT_SERVER_URL = "http://127.0.0.1:5400"


def _add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: the embedded server)")
    parser.add_argument("--data-dir", help="where the embedded PostgreSQL keeps its data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collector-hub",
        description="Collector Hub: serve the API and the dashboard, run collectors, report their progress,"
        " follow runs from the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"collector-hub {__version__}")
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
    serve.add_argument(
        "--loop",  # checked with the settings (server/settings.py), as COLLECTOR_HUB_LOOP is
        help="event loop: asyncio's, uvloop's, or auto (uvloop's when installed; default)",
    )
    serve.add_argument("--shutdown-timeout", dest="shutdown_timeout", type=float, metavar="SECONDS",
                       help="on SIGTERM, wait this long for requests in flight (default 10)")  # fmt: skip
    _add_database_options(serve)
    serve.set_defaults(command_module="serve")

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys.set_defaults(command_module="keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="make a key; it is printed once, only its hash is stored")
    create.add_argument("--role", required=True, choices=GRANTABLE_ROLES)
    create.add_argument("--name", required=True, help="who or what uses the key, e.g. dashboard")
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key by id or name")
    revoke.add_argument("key", metavar="ID_OR_NAME")
    for action in (create, listing, revoke):
        _add_database_options(action)

    collectors = sub.add_parser(
        "collectors",
        help="list the configured collectors, or check the collectors file",
        description="list: the collectors a runner would know (env values are never shown). check: validate"
        " the collectors file, find each command's program, and test the vendor collectors' credentials and"
        " connectivity (no run is started). Exit status: 0 all is well; 1 a program cannot be started or a"
        " vendor check failed; 2 the collectors file is invalid or a name is unknown.",
    )
    collectors.set_defaults(command_module="collectors")
    collectors_commands = collectors.add_subparsers(dest="collectors_command", required=True)
    collectors_list = collectors_commands.add_parser("list", help="the collectors a runner would know")
    collectors_check = collectors_commands.add_parser(
        "check", help="validate the collectors file, find each program, test vendor credentials"
    )
    collectors_check.add_argument("names", metavar="NAME", nargs="*", help="collectors to check (default: all)")
    for action in (collectors_list, collectors_check):
        action.add_argument(
            "--collectors-file", dest="collectors_file", metavar="PATH",
            help="TOML file of collectors (default $COLLECTOR_HUB_COLLECTORS_FILE)",
        )  # fmt: skip
    schedules = sub.add_parser(
        "schedules",
        help="list, add, pause, resume and remove schedules (through the server)",
        description="Manage schedules through a running server. Exit status: 0 done; 1 the server refused"
        " (its message is shown); 2 usage error or server unreachable.",
    )
    schedules.set_defaults(command_module="schedules")
    schedule_actions = schedules.add_subparsers(dest="schedules_action", required=True)
    schedule_actions.add_parser("list", help="every schedule, its next fire time and last batch")
    add = schedule_actions.add_parser("add", help="create a schedule")
    add.add_argument("name", metavar="NAME", help="lower-case letters, digits, '-', '_', '.'")
    add.add_argument("--cron", required=True, help="five fields, e.g. '0 2 * * *', or @daily, @hourly, ...")
    add.add_argument("--collectors", required=True, metavar="A,B", help="comma-separated collector names")
    add.add_argument("--timezone", default="UTC", help="IANA time zone the cron expression is read in (default UTC)")
    add.add_argument("--priority", choices=PRIORITIES, default=DEFAULT_PRIORITY)
    add.add_argument("--overlap", choices=SCHEDULE_OVERLAP_POLICIES, default=SCHEDULE_OVERLAP_POLICIES[0],
                     help="skip: no new batch while the previous one runs (default)")  # fmt: skip
    add.add_argument("--catch-up", dest="catch_up", choices=SCHEDULE_CATCH_UP_POLICIES,
                     default=SCHEDULE_CATCH_UP_POLICIES[0],
                     help="after downtime: none skips missed times (default); latest fires the last one")  # fmt: skip
    add.add_argument("--paused", action="store_true", help="create it paused")
    for name, text in (
        ("pause", "stop firing a schedule until it is resumed"),
        ("resume", "fire again, from the next due time after now"),
        ("remove", "delete a schedule (its batches keep naming it)"),
        ("next", "the next five fire times, on the schedule's clock and in UTC"),
    ):
        schedule_actions.add_parser(name, help=text).add_argument("schedule", metavar="NAME_OR_ID")
    for action in schedule_actions.choices.values():
        _add_client_options(action)

    migrate = sub.add_parser("migrate", help="apply pending database migrations and exit")
    _add_database_options(migrate)
    migrate.set_defaults(command_module="migrate")

    runner = sub.add_parser("runner", help="run collectors from the queue, without the HTTP server")
    _add_database_options(runner)
    runner.add_argument(
        "--concurrency", "--runner-concurrency", dest="runner_concurrency", type=int, metavar="N",
        help="collectors run at once (default 4)",
    )  # fmt: skip
    runner.add_argument("--runner-id", dest="runner_id", metavar="ID", help="this runner's name (default HOST:PID)")
    runner.add_argument("--collectors-file", dest="collectors_file", metavar="PATH", help="TOML file of collectors")
    runner.set_defaults(command_module="runner")

    progress = sub.add_parser(
        "progress",
        help="report a job's progress (for shell-script collectors)",
        description="Record a progress update for a job. Exit status: 0 recorded; 2 invalid input (nothing"
        " recorded); 1 not recorded where it runs (outside a job, or the database is unreachable).",
    )
    progress.add_argument("job_id", metavar="JOB_ID", help="e.g. $COLLECTOR_HUB_JOB_ID")
    progress.add_argument("status", metavar="STATUS", help="running, completed, failed or cancelled")
    progress.add_argument("percent", metavar="PERCENT", help="0-100, or '-' to leave it as it is")
    progress.add_argument("message", metavar="MESSAGE", nargs="?", help="what the collector is doing")
    progress.add_argument("--error", help="why the job failed (default: MESSAGE, for status failed)")
    progress.add_argument("--database-url", help="PostgreSQL URL (default: $COLLECTOR_HUB_DATABASE_URL)")
    progress.set_defaults(command_module="progress")

    run = sub.add_parser(
        "run",
        help="start collectors through the server and wait for them (for cron)",
        description="Exit status: 0 the batch completed, 1 it failed, was cancelled or --timeout passed,"
        " 2 usage or connection error.",
    )
    run.add_argument("collectors", metavar="NAME", nargs="+", help="collector names, e.g. demo ninja")
    run.add_argument("--priority", choices=PRIORITIES, default=DEFAULT_PRIORITY)
    _add_client_options(run)
    run.add_argument("--no-wait", action="store_true", help="print the batch and exit without waiting")
    run.add_argument(
        "--interval", type=float, default=1.0,
        help="accepted for old scripts and ignored: the batch is followed over one event stream, not polled",
    )  # fmt: skip
    run.add_argument("--timeout", type=float, help="stop waiting after this many seconds and exit 1")
    run.add_argument("--watch", action="store_true", help="bars redrawn in place, not a line per change")
    run.set_defaults(command_module="run")

    watch = sub.add_parser(
        "watch",
        help="show a batch's live progress bars in the terminal",
        description="Exit status: 0 the batch completed, 1 it failed, was cancelled or --timeout passed,"
        " 2 unknown batch, refused, or server unreachable.",
    )
    watch.add_argument("batch_id", metavar="BATCH_ID", help="e.g. bc_12345678")
    _add_client_options(watch)
    watch.add_argument("--timeout", type=float, help="stop watching after this many seconds and exit 1")
    watch.set_defaults(command_module="watch")

    logs = sub.add_parser(
        "logs",
        help="print a job's log (stdout lines to stdout, the rest to stderr)",
        description="Exit status: 0 printed (with --follow: the job completed), 1 with --follow the job failed or"
        " was cancelled, 2 unknown job, refused, or server unreachable.",
    )
    logs.add_argument("job_id", metavar="JOB_ID", help="e.g. ni_12345678")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the job ends")
    _add_client_options(logs)
    logs.set_defaults(command_module="logs")

    rerun = sub.add_parser(
        "rerun",
        help="run a batch again as a new batch (all its jobs, or --failed ones)",
        description="Exit status: 0 queued (with --watch: completed), 1 with --watch the new batch failed or was"
        " cancelled, 2 refused (unknown batch, still running, nothing failed) or server unreachable.",
    )
    rerun.add_argument("batch_id", metavar="BATCH_ID", help="e.g. bc_12345678")
    rerun.add_argument("--failed", action="store_true", help="only the failed and cancelled jobs")
    rerun.add_argument("--watch", action="store_true", help="show the new batch's live progress bars")
    _add_client_options(rerun)
    rerun.set_defaults(command_module="rerun")

    audit = sub.add_parser(
        "audit",
        help="print the audit trail: every change made through the API or the CLI, newest first (admin)",
        description="Exit status: 0 printed, 1 refused (the key is not admin, or a filter is not valid), 2 usage"
        " error or server unreachable.",
    )
    audit.add_argument("--actor", help="only this actor (an API key's name, 'jwt SUBJECT', 'open mode', ...)")
    audit.add_argument("--action", help="only this action (schedule.create) or prefix (schedule.)")
    audit.add_argument("--target", help="only entries naming this id (bc_..., sch_..., wh_...)")
    audit.add_argument("--outcome", choices=("succeeded", "refused", "failed"))
    audit.add_argument("--since", help="only entries at or after this time (2026-11-29T14:00:00Z)")
    audit.add_argument("--until", help="only entries before this time")
    audit.add_argument("--limit", type=int, default=100, help="at most this many entries (default 100)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line, as GET /api/audit gives")
    _add_client_options(audit)
    audit.set_defaults(command_module="audit")

    return parser


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(SERVER_URL_ENV) or DEFAULT_SERVER_URL,
        help="the server (default $COLLECTOR_HUB_URL or http://127.0.0.1:5400)",
    )
    parser.add_argument("--api-key", help="sent as X-API-Key (default $COLLECTOR_HUB_API_KEY, which ps cannot show)")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        # Whoever read the output stopped reading (`collector-hub logs JOB | head`): stop quietly,
        # as other command-line tools do, with the status a shell gives a tool a closed pipe
        # stopped (128 + SIGPIPE). Python would report the pipe again when it flushes stdout at
        # exit, so stdout is /dev/null from here on.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    command = importlib.import_module(f"server.cli.{args.command_module}")
    try:
        result: int = command.run(args)
    except ValueError as exc:
        if not _is_configuration_error(exc):
            raise
        print(f"collector-hub: error: {exc}", file=sys.stderr)
        return 2
    return result


# The errors of a bad setting or collectors file, which end any command with exit status 2.
CONFIGURATION_ERRORS = (("server.settings", "SettingsError"), ("collectors.registry", "RegistryError"))


def _is_configuration_error(exc: ValueError) -> bool:
    """Whether ``exc`` is one of CONFIGURATION_ERRORS. Their modules are imported by the commands
    that read settings, not here: the commands that only talk to the server (``run``, ``watch``,
    ``logs``, ...) and ``progress`` start without them (tests/test_cli_imports.py), and an
    error whose module no command imported cannot have been raised."""
    for module_name, class_name in CONFIGURATION_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, getattr(module, class_name)):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
