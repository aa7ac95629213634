"""``collector-hub audit``: the audit trail from a running server (``GET /api/audit``, which
needs the admin role: ``--api-key`` or ``$COLLECTOR_HUB_API_KEY``), newest first, one line per
entry, or the entries as JSON lines with ``--json``. The parser is in main.py. Exit status: 0
printed; 1 the server refused (its message is shown); 2 a usage error or a server that cannot
be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from server.cli.client import RunCommandError, Unreachable, check_base_url, request
from server.cli.main import API_KEY_ENV
from server.runner.protocol import printable

PAGE = 1000


class Refused(Exception):
    pass


def line(entry: dict[str, Any]) -> str:
    targets = ",".join(entry["target_ids"]) or "-"
    status = f" {entry['status']}" if entry["status"] is not None else ""
    detail = f"  {entry['detail']}" if entry["detail"] else ""
    return printable(
        f"{entry['at']}  {entry['outcome']}{status}  {entry['action']}  {targets}  by {entry['actor']}"
        f" ({entry['actor_kind']}{', ' + entry['role'] if entry['role'] else ''})"
        f"  from {entry['client_address'] or '-'}{detail}"
    )


def fetch(url: str, api_key: str | None, params: dict[str, str], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` entries, following the cursor page by page."""
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < limit:
        query = {**params, "limit": str(min(PAGE, limit - len(found)))}
        if cursor:
            query["cursor"] = cursor
        answer = request(url, "GET", "/api/audit", api_key=api_key, params=query)
        data = answer.json()
        if answer.status >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            raise Refused(f"{answer.status}: {message or answer.reason}")
        found.extend(data["entries"])
        cursor = data["next_cursor"]
        if cursor is None:
            break
    return found


def run(args: argparse.Namespace) -> int:
    try:
        base_url = check_base_url(args.url)
    except RunCommandError as exc:
        print(f"collector-hub audit: error: {exc}", file=sys.stderr)
        return 2
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    params = {
        name: value
        for name in ("actor", "action", "target", "outcome", "since", "until")
        if (value := getattr(args, name)) is not None
    }
    try:
        entries = fetch(base_url, api_key, params, args.limit)
    except Refused as exc:
        print(f"collector-hub audit: refused: {exc}", file=sys.stderr)
        return 1
    except (Unreachable, ValueError) as exc:
        print(f"collector-hub audit: error: cannot read {base_url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    for entry in entries:
        print(json.dumps(entry) if args.json else line(entry))
    return 0
