"""``collector-hub schedules list|add|pause|resume|remove|next``: schedules over the HTTP API.
The parser is in main.py; ``run`` does the chosen action.

They talk to a running server (``--url``, ``--api-key`` like ``run``), so the server checks
every field against its own collectors and time zone database, and roles apply. A schedule is
named by its name or its id. Exit status: 0 done; 1 the server refused (its message is shown);
2 a usage error or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Any

from server.cli.client import RunCommandError, Unreachable, check_base_url, request
from server.cli.main import API_KEY_ENV
from server.runner.protocol import printable

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


class Refused(Exception):
    """The server answered with an error status; the message is its ``error``."""


class ApiClient:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self._base = base_url
        self._api_key = api_key

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = request(self._base, method, path, api_key=self._api_key, body=body)
        if answer.status == 204:
            return None
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            raise Refused(f"{answer.status}: {message or answer.reason}")
        return data

    def find(self, name_or_id: str) -> dict[str, Any]:
        """The schedule with this id or name."""
        listing = self.call("GET", "/api/schedules")
        for schedule in listing["schedules"]:
            if name_or_id in (schedule["schedule_id"], schedule["name"]):
                return dict(schedule)
        raise Refused(f"no schedule named {name_or_id!r}")


def _local(timestamp: str | None, timezone: str) -> str:
    """A contract timestamp shown on the schedule's own clock."""
    if timestamp is None:
        return "-"
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return moment.astimezone(zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def _row(schedule: dict[str, Any]) -> str:
    upcoming = schedule["next_fire_times"]
    state = "enabled" if schedule["enabled"] else "paused"
    last = schedule["last_batch"]
    last_text = f"{last['batch_id']} {last['status']}" if last else "-"
    fields = [
        schedule["name"], schedule["cron"], schedule["timezone"], state,
        _local(upcoming[0], schedule["timezone"]) if upcoming else "-", last_text, ",".join(schedule["collectors"]),
    ]  # fmt: skip
    return printable("  ".join(f"{f:<{w}}" for f, w in zip(fields, WIDTHS, strict=True)).rstrip())


WIDTHS = (24, 16, 20, 8, 26, 22, 0)
HEADER = ("NAME", "CRON", "TIMEZONE", "STATE", "NEXT", "LAST BATCH", "COLLECTORS")


def cmd_list(api: ApiClient, args: argparse.Namespace) -> int:
    listing = api.call("GET", "/api/schedules")
    print("  ".join(f"{h:<{w}}" for h, w in zip(HEADER, WIDTHS, strict=True)).rstrip())
    for schedule in listing["schedules"]:
        print(_row(schedule))
    return EXIT_OK


def cmd_add(api: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "cron": args.cron,
        "collectors": [c.strip() for c in args.collectors.split(",") if c.strip()],
        "timezone": args.timezone,
        "priority": args.priority,
        "overlap": args.overlap,
        "catch_up": args.catch_up,
        "enabled": not args.paused,
    }
    created = api.call("POST", "/api/schedules", body)
    print(f"added schedule {created['name']} ({created['schedule_id']})")
    _print_next(created)
    return EXIT_OK


def _set_enabled(api: ApiClient, args: argparse.Namespace, enabled: bool) -> int:
    schedule = api.find(args.schedule)
    changed = api.call("PATCH", f"/api/schedules/{schedule['schedule_id']}", {"enabled": enabled})
    print(f"{'resumed' if enabled else 'paused'} schedule {changed['name']}")
    if enabled:
        _print_next(changed)
    return EXIT_OK


def cmd_pause(api: ApiClient, args: argparse.Namespace) -> int:
    return _set_enabled(api, args, False)


def cmd_resume(api: ApiClient, args: argparse.Namespace) -> int:
    return _set_enabled(api, args, True)


def cmd_remove(api: ApiClient, args: argparse.Namespace) -> int:
    schedule = api.find(args.schedule)
    api.call("DELETE", f"/api/schedules/{schedule['schedule_id']}")
    print(f"removed schedule {schedule['name']}")
    return EXIT_OK


def cmd_next(api: ApiClient, args: argparse.Namespace) -> int:
    _print_next(api.find(args.schedule))
    return EXIT_OK


def _print_next(schedule: dict[str, Any]) -> None:
    if not schedule["enabled"]:
        print(f"{schedule['name']} is paused: nothing is due")
        return
    for timestamp in schedule["next_fire_times"]:
        print(f"{_local(timestamp, schedule['timezone'])}  ({timestamp})")


Command = Callable[[ApiClient, argparse.Namespace], int]


ACTIONS: dict[str, Command] = {
    "list": cmd_list,
    "add": cmd_add,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "remove": cmd_remove,
    "next": cmd_next,
}


def run(args: argparse.Namespace) -> int:
    """``collector-hub schedules ACTION`` (the parser is in main.py)."""
    try:
        base_url = check_base_url(args.url)
    except RunCommandError as exc:
        print(f"collector-hub schedules: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    command = ACTIONS[args.schedules_action]
    try:
        return command(ApiClient(base_url, api_key), args)
    except Refused as exc:
        print(f"collector-hub schedules: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Unreachable as exc:
        print(f"collector-hub schedules: error: cannot reach {base_url}: {exc}", file=sys.stderr)
        return EXIT_USAGE
