"""``collector-hub keys create|list|revoke``: API keys in the database.

``create`` prints the key alone on stdout (so ``KEY=$(collector-hub keys create ...)`` works)
and on stderr what was created and how to send the key (the CLI's variable, curl's header);
the key is never shown again. The commands apply pending
migrations first, so they work on a database no server has started on yet.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import psycopg2

from server.audit.actor import cli_actor
from server.audit.entry import by
from server.audit.store import record_sync
from server.cli.main import API_KEY_ENV, DEFAULT_SERVER_URL, SERVER_URL_ENV
from server.db import database
from server.security.api_keys import ApiKeyError, KeyRecord, create_key, list_keys, revoke_key
from server.settings import load_settings


def _record_refusal(conn: Any, action: str, target: str, message: str) -> None:
    """A refused command is in the audit trail too (it changed nothing)."""
    with conn.cursor() as cur:
        record_sync(cur, by(cli_actor(), action, target[:100], outcome="refused", detail=message))
    conn.commit()


def _with_connection(args: argparse.Namespace, action: Callable[[Any], int], audited: str | None = None) -> int:
    settings = load_settings(database_url=args.database_url, data_dir=args.data_dir)
    try:
        with database.database_url_for(settings.database_url, settings.data_dir) as dsn:
            database.apply_migrations(dsn)
            conn = psycopg2.connect(dsn)
            try:
                try:
                    return action(conn)
                except ApiKeyError as exc:
                    if audited is not None:
                        _record_refusal(conn, audited, getattr(args, "key", None) or args.name, str(exc))
                    raise
            finally:
                conn.close()
    except psycopg2.OperationalError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"collector-hub keys: error: cannot reach the database: {first}", file=sys.stderr)
        return 1
    except ApiKeyError as exc:
        print(f"collector-hub keys: error: {exc}", file=sys.stderr)
        return 2


def _describe(record: KeyRecord) -> str:
    state = f"revoked {record.revoked_at}" if record.revoked_at else "live"
    return f"{record.key_id}  {record.role:<7}  {record.created_at}  {state:<28}  {record.name}"


def how_to_use(server_url: str) -> str:
    """What to do with a new key: from then on every request without one is refused. The key
    itself stays on stdout only (stderr may end up in a log)."""
    return "\n".join(
        [
            "Use it (the key is the line printed on stdout):",
            f"  collector-hub commands:  export {API_KEY_ENV}=<the key>",
            f'  curl:                    curl -H "X-API-Key: ${API_KEY_ENV}" {server_url}/api/collectors',
        ]
    )


def cmd_create(args: argparse.Namespace) -> int:
    def create(conn: Any) -> int:
        key, record = create_key(conn, args.name, args.role, by(cli_actor(), "api_key.create"))
        print(key)
        print(
            f"created key {record.key_id} ({record.name!r}, role {record.role}); it is shown only this once",
            file=sys.stderr,
        )
        print(how_to_use(os.environ.get(SERVER_URL_ENV) or DEFAULT_SERVER_URL), file=sys.stderr)
        return 0

    return _with_connection(args, create, "api_key.create")


def cmd_list(args: argparse.Namespace) -> int:
    def show(conn: Any) -> int:
        records = list_keys(conn)
        print(f"{'ID':<12}  {'ROLE':<7}  {'CREATED':<20}  {'STATE':<28}  NAME")
        for record in records:
            print(_describe(record))
        return 0

    return _with_connection(args, show)


def cmd_revoke(args: argparse.Namespace) -> int:
    def revoke(conn: Any) -> int:
        record = revoke_key(conn, args.key, by(cli_actor(), "api_key.revoke"))
        print(f"revoked key {record.key_id} ({record.name!r}); requests with it now get 401", file=sys.stderr)
        return 0

    return _with_connection(args, revoke, "api_key.revoke")


def run(args: argparse.Namespace) -> int:
    actions = {"create": cmd_create, "list": cmd_list, "revoke": cmd_revoke}
    return actions[args.keys_command](args)
