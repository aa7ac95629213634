"""The body of a delivery: the webhook payload, built once per delivery.

Every body is ``type`` (the event), ``delivery_id``, the event's fields and ``timestamp`` (when
the delivery was written: when the batch ended, the job failed, the collector's health changed).

- ``batch.*``: every field is exactly what ``GET /api/collectors/runs/batch/{id}`` returns, built
  by PostgreSQL as for the GET (``server/runs/body_sql.py``), so the two cannot drift apart. A
  terminal batch does not change any more, so building the body at the first attempt sends the
  final state.
- ``job.failed``: what ``GET /api/collectors/runs/job/{id}`` returns (the job is final; its
  batch's summary is as it stood at the first attempt).
- ``collector.*``: the collector's health at its change, stored with the delivery
  (server/health/representation.py).
- ``variance.*``: the checks run (``check_id``) and the variances it opened or resolved, as
  ``GET /api/exceptions`` lists them when the body is built: one (``variance``) or, for a digest,
  ``count`` and the first ``DIGEST_LIMIT`` of them (``variances``; ``truncated`` when there were
  more: ``GET /api/exceptions`` has them all).
- A test event (``POST /api/webhooks/{id}/test``) carries ``"test": true`` and sample fields.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import aiopg

from server.api.timestamps import format_timestamp
from server.runs import body_sql
from server.variances import store as variances
from server.variances.representation import exception_json
from server.webhooks.outbox import Claim

# A first checks run over an estate can open thousands: a digest lists this many.
DIGEST_LIMIT = 500


async def event_fields(pool: aiopg.Pool, claim: Claim) -> dict[str, Any]:
    if claim.test or claim.event.startswith("collector."):
        return {"test": True, **(claim.data or {})} if claim.test else dict(claim.data or {})
    if claim.event.startswith("variance."):
        return await _variance_fields(pool, dict(claim.data or {}))
    if claim.event == "job.failed":
        assert claim.job_id is not None
        job = await body_sql.job_body(pool, claim.job_id)
        if job is None:  # deleting a batch deletes its deliveries, so this is a race at worst
            raise LookupError(f"job {claim.job_id} no longer exists")
        return dict(json.loads(job))
    assert claim.batch_id is not None
    batch = await body_sql.batch_body(pool, claim.batch_id)  # the batch GET's body
    if batch is None:
        raise LookupError(f"batch {claim.batch_id} no longer exists")
    return dict(json.loads(batch))


async def build_body(pool: aiopg.Pool, claim: Claim) -> bytes:
    created_at: dt.datetime = claim.created_at
    payload = {
        "type": claim.event,
        "delivery_id": claim.delivery_id,
        **await event_fields(pool, claim),
        "timestamp": format_timestamp(created_at),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def _variance_fields(pool: aiopg.Pool, data: dict[str, Any]) -> dict[str, Any]:
    ids: list[int] = list(data["variance_ids"])
    rows = await variances.get_variances(pool, ids[:DIGEST_LIMIT])
    if not data.get("digest"):
        if not rows:  # variances are deleted only with the whole history: a race at worst
            raise LookupError(f"variance {ids[0]} no longer exists")
        return {"check_id": data["check_id"], "variance": exception_json(rows[0])}
    return {
        "check_id": data["check_id"],
        "digest": True,
        "count": len(ids),
        "variances": [exception_json(row) for row in rows],
        "truncated": len(ids) > DIGEST_LIMIT,
    }
