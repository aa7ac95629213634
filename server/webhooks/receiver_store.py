"""The SQL side of webhook receivers: created, changed, rotated and removed through the API, or
declared in the settings (upserted at start). Their deliveries are in ``outbox.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiopg

from server.audit import store as audit_store
from server.audit.entry import AuditEntry
from server.db import database
from server.errors import ConflictError, NotFoundError
from server.webhooks.rules.config import DeclaredWebhook

ROTATION_OVERLAP = "24 hours"
# Any constant; only nodes upserting declared webhooks at the same time take it.
DECLARED_LOCK_ID = 0x77686B73  # "whks"

Row = dict[str, Any]


async def create_webhook(
    pool: aiopg.Pool,
    url: str,
    events: Sequence[str],
    collectors: Sequence[str] | None,
    description: str | None,
    secret: str,
    audit: AuditEntry,
    *,
    variance_digest: bool = False,
) -> Row:
    async with database.transaction(pool) as cur:
        await cur.execute(
            "INSERT INTO webhooks (url, events, collectors, description, secret, variance_digest)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
            (url, list(events), None if collectors is None else list(collectors), description, secret, variance_digest),
        )
        row: Row = await cur.fetchone()
        await audit_store.record(cur, audit.about(row["webhook_id"], detail=f"url {url}, events {', '.join(events)}"))
    return row


@database.read_only
async def list_webhooks(pool: aiopg.Pool) -> list[Row]:
    async with database.cursor(pool) as cur:
        await cur.execute("SELECT * FROM webhooks ORDER BY created_at, webhook_id")
        rows: list[Row] = await cur.fetchall()
    return rows


@database.read_only
async def get_webhook(pool: aiopg.Pool, webhook_id: str) -> Row:
    async with database.cursor(pool) as cur:
        await cur.execute("SELECT * FROM webhooks WHERE webhook_id = %s", (webhook_id,))
        row: Row | None = await cur.fetchone()
    if row is None:
        raise NotFoundError("Webhook not found")
    return row


async def _lock_api_webhook(cur: Any, webhook_id: str, action: str) -> Row:
    await cur.execute("SELECT * FROM webhooks WHERE webhook_id = %s FOR UPDATE", (webhook_id,))
    row: Row | None = await cur.fetchone()
    if row is None:
        raise NotFoundError("Webhook not found")
    if row["source"] == "settings" and action != "enable":
        raise ConflictError(
            f"Webhook is declared in COLLECTOR_HUB_WEBHOOKS and cannot be {action} through the API; change the setting"
        )
    return row


async def update_webhook(pool: aiopg.Pool, webhook_id: str, changes: dict[str, Any], audit: AuditEntry) -> Row:
    """PATCH: ``url``, ``events``, ``collectors``, ``description``, ``variance_digest``,
    ``enabled``. Re-enabling clears the reason and the failure clock; disabling records who did
    it."""
    async with database.transaction(pool) as cur:
        only_enabled = set(changes) <= {"enabled"}
        row = await _lock_api_webhook(cur, webhook_id, "enable" if only_enabled else "changed")
        sets = ["updated_at = clock_timestamp()"]
        params: list[Any] = []
        for column in ("url", "events", "collectors", "description", "variance_digest"):
            if column in changes:
                sets.append(f"{column} = %s")
                value = changes[column]
                params.append(list(value) if column in ("events", "collectors") and value is not None else value)
        if "enabled" in changes and changes["enabled"] != row["enabled"]:
            if changes["enabled"]:
                sets += ["enabled = true", "disabled_reason = NULL", "disabled_at = NULL", "failing_since = NULL"]
            else:
                sets += ["enabled = false", "disabled_reason = 'disabled by request'"]
                sets += ["disabled_at = clock_timestamp()"]
        await cur.execute(
            f"UPDATE webhooks SET {', '.join(sets)} WHERE webhook_id = %s RETURNING *", (*params, webhook_id)
        )
        updated: Row = await cur.fetchone()
        await audit_store.record(cur, audit.about(detail="changed " + ", ".join(sorted(changes))))
    return updated


async def delete_webhook(pool: aiopg.Pool, webhook_id: str, audit: AuditEntry) -> None:
    async with database.transaction(pool) as cur:
        row = await _lock_api_webhook(cur, webhook_id, "deleted")
        await cur.execute("DELETE FROM webhooks WHERE webhook_id = %s", (webhook_id,))
        await audit_store.record(cur, audit.about(detail=f"url {row['url']}"))


async def rotate_secret(pool: aiopg.Pool, webhook_id: str, new_secret: str, audit: AuditEntry) -> Row:
    """The current secret becomes the previous one, still used to sign for 24 hours."""
    async with database.transaction(pool) as cur:
        await _lock_api_webhook(cur, webhook_id, "rotated")
        await cur.execute(
            "UPDATE webhooks SET previous_secret = secret, secret = %s,"
            f" previous_secret_expires_at = clock_timestamp() + interval '{ROTATION_OVERLAP}',"
            " updated_at = clock_timestamp() WHERE webhook_id = %s RETURNING *",
            (new_secret, webhook_id),
        )
        row: Row = await cur.fetchone()
        await audit_store.record(cur, audit)  # never the secret
    return row


async def upsert_declared(pool: aiopg.Pool, declared: Sequence[DeclaredWebhook]) -> None:
    """Make the settings-declared receivers exactly those declared (keyed by URL). A changed
    secret is a rotation: the old one keeps signing for 24 hours. An auto-disabled declared
    receiver stays disabled until an admin enables it."""
    async with database.transaction(pool) as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(%s)", (DECLARED_LOCK_ID,))
        for hook in declared:
            await cur.execute(
                "INSERT INTO webhooks AS w (url, events, description, secret, source)"
                " VALUES (%s, %s, %s, %s, 'settings')"
                " ON CONFLICT (url) WHERE source = 'settings' DO UPDATE SET"
                "   events = EXCLUDED.events, description = EXCLUDED.description, secret = EXCLUDED.secret,"
                "   previous_secret = CASE WHEN w.secret <> EXCLUDED.secret THEN w.secret ELSE w.previous_secret END,"
                "   previous_secret_expires_at = CASE WHEN w.secret <> EXCLUDED.secret"
                f"       THEN clock_timestamp() + interval '{ROTATION_OVERLAP}' ELSE w.previous_secret_expires_at END,"
                "   updated_at = clock_timestamp()",
                (hook.url, list(hook.events), hook.description, hook.secret),
            )
        await cur.execute(
            "DELETE FROM webhooks WHERE source = 'settings' AND NOT (url = ANY(%s))", ([h.url for h in declared],)
        )
