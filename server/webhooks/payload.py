"""The body of a delivery: the spec's webhook payload, built once per delivery.

``batch_id``, ``status`` and ``collectors`` (and every other field of the batch) are exactly
what ``GET /api/collectors/runs/batch/{id}`` returns: read by ``server.runs.store``'s query and shaped by
``representation.batch_json``, like the GET, so the two cannot drift apart; ``type``,
``delivery_id`` and ``timestamp`` (when the batch ended, i.e. when the delivery was written)
are added. A terminal batch does not change any more, so
building the body at the first attempt sends the final state.
"""

from __future__ import annotations

import datetime as dt
import json

import aiopg

from server.api.timestamps import format_timestamp
from server.runs import representation as rep
from server.runs import store as runs


async def build_body(pool: aiopg.Pool, event: str, delivery_id: str, batch_id: str, created_at: dt.datetime) -> bytes:
    # The rows and the shape of the batch GET; the batch has ended, so no transaction.
    rows = await runs.ended_batch_rows(pool, batch_id)
    if rows is None:  # deleting a batch deletes its deliveries, so this is a race at worst
        raise LookupError(f"batch {batch_id} no longer exists")
    batch = rep.batch_json(*rows)
    payload = {
        "type": event,
        "delivery_id": delivery_id,
        **batch,
        "timestamp": format_timestamp(created_at),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
