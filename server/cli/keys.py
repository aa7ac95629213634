"""``collector-hub keys create|list|revoke``: API keys in the database.

``create`` prints the key alone on stdout (so ``KEY=$(collector-hub keys create ...)`` works)
and what was created on stderr; the key is never shown again. The commands apply pending
migrations first, so they work on a database no server has started on yet.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import psycopg2

from server.db import database
from server.security.api_keys import GRANTABLE_ROLES, ApiKeyError, KeyRecord, create_key, list_keys, revoke_key
from server.settings import load_settings


def _with_connection(args: argparse.Namespace, action: Callable[[Any], int]) -> int:
    settings = load_settings(database_url=args.database_url, data_dir=args.data_dir)
    try:
        with database.database_url_for(settings.database_url, settings.data_dir) as dsn:
            database.apply_migrations(dsn)
            conn = psycopg2.connect(dsn)
            try:
                return action(conn)
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


def cmd_create(args: argparse.Namespace) -> int:
    def create(conn: Any) -> int:
        key, record = create_key(conn, args.name, args.role)
        print(key)
        print(
            f"created key {record.key_id} ({record.name!r}, role {record.role}); it is shown only this once",
            file=sys.stderr,
        )
        return 0

    return _with_connection(args, create)


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
        record = revoke_key(conn, args.key)
        print(f"revoked key {record.key_id} ({record.name!r}); requests with it now get 401", file=sys.stderr)
        return 0

    return _with_connection(args, revoke)


def add_keys_parser(sub: Any, add_database_options: Callable[[argparse.ArgumentParser], None]) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)

    create = actions.add_parser("create", help="make a key; it is printed once, only its hash is stored")
    create.add_argument("--role", required=True, choices=GRANTABLE_ROLES)
    create.add_argument("--name", required=True, help="who or what uses the key, e.g. dashboard")
    add_database_options(create)
    create.set_defaults(func=cmd_create)

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    add_database_options(listing)
    listing.set_defaults(func=cmd_list)

    revoke = actions.add_parser("revoke", help="revoke a key by id or name")
    revoke.add_argument("key", metavar="ID_OR_NAME")
    add_database_options(revoke)
    revoke.set_defaults(func=cmd_revoke)
