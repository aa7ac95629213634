"""Webhooks under test: registering a receiver, ending a batch, reading the outbox."""

from __future__ import annotations

from typing import Any

import psycopg2.extras
from aiohttp.test_utils import TestClient

from tests.support.database import fetch_rows

# Settings for a dispatcher under test: loopback receivers allowed, due rows looked for every
# 50 ms, three retries 0.1 s apart.
FAST = {"webhook_allow_private": True, "webhook_poll_interval": 0.05, "webhook_retry_schedule": (0.1, 0.1, 0.1)}


async def register(client: TestClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    """Register a receiver for ``events`` (every batch end by default); returns the created webhook."""
    events = events or ["batch.completed", "batch.failed", "batch.cancelled"]
    resp = await client.post("/api/webhooks", json={"url": url, "events": events})
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


async def finish_batch(client: TestClient, status: str = "completed") -> str:
    """A batch of one demo job, driven to ``status`` over HTTP; returns its id."""
    resp = await client.post("/api/collectors/run", json={"collectors": ["demo"]})
    assert resp.status == 201
    created = await resp.json()
    job_id = created["collectors"][0]["job_id"]
    if status == "cancelled":
        resp = await client.post(f"/api/collectors/runs/batch/{created['batch_id']}/cancel")
    else:
        report = {"status": status, **({"error": "boom"} if status == "failed" else {})}
        resp = await client.post(f"/api/collectors/runs/job/{job_id}/progress", json=report)
    assert resp.status == 200, await resp.text()
    return str(created["batch_id"])


def rows(db: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Every row of a query, as dicts (a read: it waits for no lock the app holds)."""
    with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, params)
        return [dict(r) for r in cur.fetchall()]


def deliveries_of(db: Any, webhook_id: str) -> list[dict[str, Any]]:
    return rows(db, "SELECT * FROM webhook_deliveries WHERE webhook_id = %s ORDER BY created_at", webhook_id)


def attempts_of(db: Any, delivery_id: str) -> list[dict[str, Any]]:
    return rows(db, "SELECT * FROM webhook_attempts WHERE delivery_id = %s ORDER BY attempt_number", delivery_id)


async def delivery_status(db: Any, webhook_id: str, status: str, count: int = 1) -> list[dict[str, Any]] | None:
    """The webhook's deliveries in ``status`` once there are ``count`` of them (for ``eventually``)."""
    sql = "SELECT * FROM webhook_deliveries WHERE webhook_id = %s AND status = %s ORDER BY created_at"
    found = await fetch_rows(db, sql, webhook_id, status)
    return found if len(found) >= count else None
