"""API keys: made, stored as a hash, looked up, revoked.

A key reads ``chk_<key_id>_<secret>``: ``key_id`` (12 hex digits) is public and finds the row;
the secret is 256 random bits. Only SHA-256 of the whole key is stored, and the stored and
computed hashes are compared with ``hmac.compare_digest``. The key itself is printed once by
``collector-hub keys create`` and never again: not listed, not logged.

Keys given in settings (``COLLECTOR_HUB_API_KEYS``) are hashed when the app is built and
compared the same way, against every configured key (no early exit).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from datetime import UTC
from typing import Any

import aiopg
import psycopg2.errors
import psycopg2.extras

from collectors.contract import GRANTABLE_ROLES
from server.audit.entry import AuditEntry
from server.audit.store import record_sync
from server.db import database

KEY_PREFIX = "chk_"
_KEY_SHAPE = re.compile(r"^chk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
MAX_NAME_CHARS = 100


@dataclasses.dataclass(frozen=True)
class KeyRecord:
    key_id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None


@dataclasses.dataclass(frozen=True)
class ConfiguredKey:
    """A key from settings: its role and the hash of the key (the key is not kept)."""

    role: str
    key_hash: str

    @property
    def client_id(self) -> str:
        return "key:settings-" + self.key_hash[:12]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its id."""
    key_id = secrets.token_hex(6)
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed database key, else None (settings keys have any shape)."""
    match = _KEY_SHAPE.match(key)
    return match.group(1) if match else None


def hashes_match(stored: str, computed: str) -> bool:
    return hmac.compare_digest(stored.encode(), computed.encode())


def match_configured_key(key: str, configured: tuple[ConfiguredKey, ...]) -> ConfiguredKey | None:
    """The settings key equal to ``key``. Every entry is compared, found or not, so the time
    taken does not tell which entry (or how much of one) matched."""
    computed = hash_key(key)
    found = None
    for entry in configured:
        if hashes_match(entry.key_hash, computed):
            found = entry
    return found


@dataclasses.dataclass(frozen=True)
class StoredKeyMatch:
    key_id: str
    name: str
    role: str
    revoked: bool


@database.read_only
async def find_stored_key(pool: aiopg.Pool, key: str) -> StoredKeyMatch | None:
    """The database key equal to ``key`` (revoked ones too, so the caller can say so)."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    async with database.cursor(pool) as cur:
        await cur.execute(
            "SELECT key_id, name, role, key_hash, revoked_at IS NOT NULL AS revoked FROM api_keys WHERE key_id = %s",
            (key_id,),
        )
        row = await cur.fetchone()
    if row is None or not hashes_match(row["key_hash"], hash_key(key)):
        return None
    return StoredKeyMatch(row["key_id"], row["name"], row["role"], row["revoked"])


@database.read_only
async def any_stored_key(pool: aiopg.Pool) -> bool:
    """Whether a key was ever created here (revoked ones count: revoking the last key must not
    open the server)."""
    async with database.cursor(pool) as cur:
        await cur.execute("SELECT EXISTS (SELECT 1 FROM api_keys) AS found")
        row = await cur.fetchone()
    return bool(row["found"])


# --- The CLI side (synchronous psycopg2) -------------------------------------------------------


class ApiKeyError(ValueError):
    """A key command cannot do what was asked (bad role or name, no such key)."""


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise ApiKeyError(f"name must be 1-{MAX_NAME_CHARS} printable characters, got {name!r}")
    return name


def check_role(role: str) -> str:
    if role not in GRANTABLE_ROLES:
        raise ApiKeyError(f"role must be one of {', '.join(GRANTABLE_ROLES)}, got {role!r}")
    return role


def create_key(conn: Any, name: str, role: str, audit: AuditEntry | None = None) -> tuple[str, KeyRecord]:
    """Store a new key; return the key (to show once) and its record. ``audit`` (the CLI's) is
    written in the same transaction, naming the key by its id and name, never the key."""
    name, role = check_name(name), check_role(role)
    key, key_id = new_key()
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        try:
            cur.execute(
                "INSERT INTO api_keys (key_id, name, role, key_hash) VALUES (%s, %s, %s, %s)"
                " RETURNING key_id, name, role, created_at, revoked_at",
                (key_id, name, role, hash_key(key)),
            )
        except psycopg2.errors.UniqueViolation:
            conn.rollback()
            raise ApiKeyError(f"a key named {name!r} already exists; revoke it first or choose another name") from None
        row = cur.fetchone()
        if audit is not None:
            record_sync(cur, audit.about(key_id, detail=f"name {name}, role {role}"))
    conn.commit()
    return key, _record(row)


def list_keys(conn: Any) -> list[KeyRecord]:
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT key_id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id")
        rows = cur.fetchall()
    return [_record(row) for row in rows]


def revoke_key(conn: Any, id_or_name: str, audit: AuditEntry | None = None) -> KeyRecord:
    """Revoke the live key with this id or name. Takes effect on the next request."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL AND (key_id = %s OR name = %s)"
            " RETURNING key_id, name, role, created_at, revoked_at",
            (id_or_name, id_or_name),
        )
        rows = cur.fetchall()
        if len(rows) != 1:
            conn.rollback()
            if not rows:
                raise ApiKeyError(f"no live key has the id or name {id_or_name!r} (see collector-hub keys list)")
            raise ApiKeyError(f"{id_or_name!r} matches several keys; revoke by id")
        if audit is not None:
            record_sync(cur, audit.about(rows[0]["key_id"], detail=f"name {rows[0]['name']}"))
    conn.commit()
    return _record(rows[0])


def _record(row: Any) -> KeyRecord:
    def stamp(value: Any) -> str | None:
        return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return KeyRecord(row["key_id"], row["name"], row["role"], stamp(row["created_at"]) or "", stamp(row["revoked_at"]))
