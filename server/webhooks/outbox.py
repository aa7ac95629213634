"""The SQL side of webhooks: receivers, the delivery outbox and its attempts.

Deliveries are created in the transaction of the change they tell of: by the triggers of
sql/003_webhooks.sql (a batch that ends) and sql/011_health_and_audit.sql (a job that fails),
by server/health/store.py (a collector's health that changes), and by ``create_test_delivery``
(an admin's test event). From there a delivery is only ever moved by the functions below:
``claim_due`` (SKIP LOCKED, with a lease), ``record_attempt`` (by the lease holder only) and
``redeliver`` (by an admin). The receivers themselves are in ``receiver_store.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiopg
import psycopg2
import psycopg2.extras

from server.audit import store as audit_store
from server.audit.entry import AuditEntry
from server.db import database
from server.errors import ConflictError, NotFoundError

Row = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Deliveries, as the API shows them


@database.read_only
async def list_deliveries(pool: aiopg.Pool, webhook_id: str, limit: int) -> list[tuple[Row, list[Row]]]:
    """Newest first, each with its attempts in order."""
    async with database.transaction(pool) as cur:
        await cur.execute("SELECT 1 FROM webhooks WHERE webhook_id = %s", (webhook_id,))
        if await cur.fetchone() is None:
            raise NotFoundError("Webhook not found")
        await cur.execute(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = %s ORDER BY created_at DESC, delivery_id LIMIT %s",
            (webhook_id, limit),
        )
        deliveries: list[Row] = await cur.fetchall()
        await cur.execute(
            "SELECT * FROM webhook_attempts WHERE delivery_id = ANY(%s) ORDER BY delivery_id, attempt_number",
            ([d["delivery_id"] for d in deliveries],),
        )
        attempts: list[Row] = await cur.fetchall()
    by_delivery: dict[str, list[Row]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt["delivery_id"], []).append(attempt)
    return [(d, by_delivery.get(d["delivery_id"], [])) for d in deliveries]


async def redeliver(pool: aiopg.Pool, delivery_id: str, audit: AuditEntry) -> tuple[Row, list[Row]]:
    """Due now, with the retry schedule started over; same id and same body bytes. Returns the
    delivery and its attempts as this transaction left them (pending): read in it, because a
    dispatcher polling on any node may take the delivery the moment it commits."""
    async with database.transaction(pool) as cur:
        await cur.execute(
            "SELECT d.*, w.enabled FROM webhook_deliveries d JOIN webhooks w USING (webhook_id)"
            " WHERE d.delivery_id = %s FOR UPDATE OF d",
            (delivery_id,),
        )
        row: Row | None = await cur.fetchone()
        if row is None:
            raise NotFoundError("Delivery not found")
        if not row["enabled"]:
            raise ConflictError("The webhook is disabled; enable it (PATCH enabled: true) before redelivering")
        await cur.execute(
            "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0, completed_at = NULL,"
            " next_attempt_at = clock_timestamp(), claim_token = NULL"
            " WHERE delivery_id = %s AND NOT (status = 'pending' AND claim_token IS NOT NULL"
            "                                 AND next_attempt_at > clock_timestamp())"
            " RETURNING *",
            (delivery_id,),
        )
        queued: Row | None = await cur.fetchone()
        if queued is None:
            raise ConflictError("The delivery is being attempted right now; try again when that attempt has ended")
        await cur.execute(
            "SELECT * FROM webhook_attempts WHERE delivery_id = %s ORDER BY attempt_number", (delivery_id,)
        )
        attempts: list[Row] = await cur.fetchall()
        await audit_store.record(cur, audit.about(row["webhook_id"]))
    return queued, attempts


async def create_test_delivery(
    pool: aiopg.Pool, webhook_id: str, event: str, data: dict[str, Any], audit: AuditEntry
) -> Row:
    """A delivery of a sample ``event`` to one receiver, due now, marked as a test; its row as
    created (pending: a dispatcher may take it the moment this commits)."""
    async with database.transaction(pool) as cur:
        await cur.execute("SELECT enabled FROM webhooks WHERE webhook_id = %s FOR SHARE", (webhook_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError("Webhook not found")
        if not row["enabled"]:
            raise ConflictError("The webhook is disabled; enable it (PATCH enabled: true) before testing it")
        await cur.execute(
            "INSERT INTO webhook_deliveries (webhook_id, event, data, test) VALUES (%s, %s, %s, true) RETURNING *",
            (webhook_id, event, psycopg2.extras.Json(data)),
        )
        created: Row = await cur.fetchone()
        await audit_store.record(cur, audit.about(created["delivery_id"], detail=f"event {event}"))
    return created


# ---------------------------------------------------------------------------------------------
# Deliveries, as the dispatcher moves them


@dataclasses.dataclass(frozen=True)
class Claim:
    """A delivery held by this dispatcher until its lease ends."""

    delivery_id: str
    webhook_id: str
    event: str
    batch_id: str | None
    job_id: str | None
    data: dict[str, Any] | None  # the event's data, for events not re-read from a table
    test: bool
    body: bytes | None
    attempt_number: int
    round_attempts: int
    created_at: Any
    url: str
    secrets: tuple[str, ...]  # newest first
    token: str


async def claim_due(pool: aiopg.Pool, token: str, limit: int, lease_seconds: float) -> list[Claim]:
    """Take up to ``limit`` due deliveries of enabled receivers. SKIP LOCKED keeps two nodes off
    the same row; the lease (``next_attempt_at`` moved forward) keeps it off every other
    dispatcher until this attempt is recorded, or, if this node dies, until the lease ends.

    One statement under ``database.cursor`` (autocommit), not a transaction: see the lock rule
    in server/db/database.py."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            """
            WITH due AS (
                SELECT d.delivery_id
                  FROM webhook_deliveries d JOIN webhooks w USING (webhook_id)
                 WHERE d.status = 'pending' AND d.next_attempt_at <= clock_timestamp() AND w.enabled
                 ORDER BY d.next_attempt_at
                 LIMIT %(limit)s
                   FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE webhook_deliveries d
               SET claim_token = %(token)s,
                   next_attempt_at = clock_timestamp() + make_interval(secs => %(lease)s),
                   attempt_count = d.attempt_count + 1,
                   round_attempts = d.round_attempts + 1
              FROM due, webhooks w
             WHERE d.delivery_id = due.delivery_id AND w.webhook_id = d.webhook_id
         RETURNING d.delivery_id, d.webhook_id, d.event, d.batch_id, d.job_id, d.data, d.test, d.body,
                   d.attempt_count, d.round_attempts,
                   d.created_at, w.url, w.secret, w.previous_secret,
                   coalesce(w.previous_secret_expires_at > clock_timestamp(), false) AS previous_valid
            """,
            {"limit": limit, "token": token, "lease": lease_seconds},
        )
        rows = await cur.fetchall()
    return [
        Claim(
            delivery_id=r["delivery_id"],
            webhook_id=r["webhook_id"],
            event=r["event"],
            batch_id=r["batch_id"],
            job_id=r["job_id"],
            data=r["data"],
            test=r["test"],
            body=bytes(r["body"]) if r["body"] is not None else None,
            attempt_number=r["attempt_count"],
            round_attempts=r["round_attempts"],
            created_at=r["created_at"],
            url=r["url"],
            secrets=(r["secret"], r["previous_secret"]) if r["previous_valid"] else (r["secret"],),
            token=token,
        )
        for r in rows
    ]


async def store_body(pool: aiopg.Pool, delivery_id: str, body: bytes) -> bytes | None:
    """Keep the first body built for a delivery; every later attempt sends these bytes. None if
    the delivery is gone (its receiver was deleted)."""
    async with database.cursor(pool) as cur:
        await cur.execute(
            "UPDATE webhook_deliveries SET body = coalesce(body, %s) WHERE delivery_id = %s RETURNING body",
            (psycopg2.Binary(body), delivery_id),
        )
        row = await cur.fetchone()
    return None if row is None else bytes(row["body"])


@dataclasses.dataclass(frozen=True)
class AttemptRecord:
    attempted_at: Any  # datetime
    duration_ms: int
    response_status: int | None
    response_body: str | None
    error: str | None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an attempt means for its delivery and receiver."""

    delivery_status: str  # pending | succeeded | failed
    retry_in: float | None = None  # seconds, when pending
    receiver_ok: bool = False  # a success resets the receiver's failure clock
    disable_reason: str | None = None  # disable the receiver now (410 Gone)


# What an attempt does to its receiver, by outcome (a CTE of the one statement below).
_RECEIVER_OK = "UPDATE webhooks SET failing_since = NULL WHERE webhook_id = %(webhook)s AND failing_since IS NOT NULL"
_RECEIVER_GONE = (
    "UPDATE webhooks SET enabled = false, disabled_reason = %(reason)s, disabled_at = clock_timestamp(),"
    " updated_at = clock_timestamp() WHERE webhook_id = %(webhook)s AND enabled"
)
# Start the failure clock; disable a receiver whose clock is older than the limit. In SET and
# WHERE, column names mean the values before this update.
_TOO_LONG = (
    "enabled AND failing_since IS NOT NULL AND failing_since < clock_timestamp() - make_interval(secs => %(limit)s)"
)
_RECEIVER_FAILED = f"""
    UPDATE webhooks SET
           failing_since = coalesce(failing_since, %(at)s),
           enabled = enabled AND NOT ({_TOO_LONG}),
           disabled_reason = CASE WHEN {_TOO_LONG}
               THEN format('failing since %%s (longer than %%s)',
                           to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                           make_interval(secs => %(limit)s))
               ELSE disabled_reason END,
           disabled_at = CASE WHEN {_TOO_LONG} THEN clock_timestamp() ELSE disabled_at END,
           updated_at = CASE WHEN {_TOO_LONG} THEN clock_timestamp() ELSE updated_at END
     WHERE webhook_id = %(webhook)s
"""


async def record_attempt(
    pool: aiopg.Pool, claim: Claim, attempt: AttemptRecord, outcome: Outcome, disable_after_seconds: float
) -> bool:
    """Log the attempt, move the delivery and update the receiver, atomically. Returns False if
    the lease was lost meanwhile (the attempt is still logged, the delivery left to its new
    holder) or the delivery is gone (its receiver was deleted while the attempt ran).

    One statement in autocommit, like ``claim_due``: its locks never outlive it (the lock rule
    in server/db/database.py)."""
    if outcome.receiver_ok:
        receiver_update = _RECEIVER_OK
    elif outcome.disable_reason:
        receiver_update = _RECEIVER_GONE
    else:
        receiver_update = _RECEIVER_FAILED
    async with database.cursor(pool) as cur:
        await cur.execute(
            f"""
            WITH delivery AS (  -- no FOR UPDATE: "moved" updates this row in the same statement
                SELECT delivery_id FROM webhook_deliveries WHERE delivery_id = %(id)s
            ), logged AS (
                INSERT INTO webhook_attempts (delivery_id, attempt_number, attempted_at, duration_ms, url,
                                              response_status, response_body, error)
                SELECT delivery_id, %(number)s, %(at)s, %(ms)s, %(url)s, %(status_code)s, %(body)s, %(error)s
                  FROM delivery
                ON CONFLICT (delivery_id, attempt_number) DO NOTHING
            ), moved AS (
                UPDATE webhook_deliveries SET status = %(status)s, claim_token = NULL,
                       next_attempt_at = CASE WHEN %(status)s = 'pending'
                           THEN clock_timestamp() + make_interval(secs => %(retry_in)s) ELSE next_attempt_at END,
                       completed_at = CASE WHEN %(status)s = 'pending' THEN NULL ELSE clock_timestamp() END
                 WHERE delivery_id = %(id)s AND claim_token = %(token)s
                RETURNING delivery_id
            ), receiver AS (
                {receiver_update}
                   AND EXISTS (SELECT 1 FROM delivery)
            )
            SELECT count(*) AS held FROM moved
            """,
            {
                "id": claim.delivery_id,
                "number": claim.attempt_number,
                "at": attempt.attempted_at,
                "ms": attempt.duration_ms,
                "url": claim.url,
                "status_code": attempt.response_status,
                "body": attempt.response_body,
                "error": attempt.error,
                "status": outcome.delivery_status,
                "retry_in": outcome.retry_in or 0.0,
                "token": claim.token,
                "webhook": claim.webhook_id,
                "reason": outcome.disable_reason,
                "limit": disable_after_seconds,
            },
        )
        row = await cur.fetchone()
    return bool(row["held"])
