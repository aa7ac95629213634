"""Runs over HTTP and in the tables: starting a batch, reading JSON, arranging a job's row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp.test_utils import TestClient

from tests.support.database import execute

if TYPE_CHECKING:
    from tests.support.openapi_contract import Contract

RUN = "/api/collectors/run"


async def trigger(
    client: TestClient, *collectors: str, priority: str | None = None, contract: Contract | None = None
) -> dict[str, Any]:
    """Start a batch of ``collectors`` (the demo when none is named) and return the 201 body.

    With ``contract``, the request and its answer are also checked against the OpenAPI document."""
    body: dict[str, Any] = {"collectors": list(collectors or ("demo",))}
    if priority is not None:
        body["priority"] = priority
    if contract is not None:
        created: dict[str, Any] = await contract.call(client, "POST", RUN, 201, json=body)
        return created
    response = await client.post(RUN, json=body)
    assert response.status == 201, await response.text()
    created = await response.json()
    return created


async def get_json(client: TestClient, path: str, status: int = 200) -> Any:
    """GET ``path``, check its status, return its JSON body."""
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


async def set_job(db: Any, job_id: str, **columns: Any) -> None:
    """Write columns of a job's row directly, as a collector on another host would, without
    blocking the event loop the app under test runs on (tests/support/database.py)."""
    sets = ", ".join(f"{name} = %s" for name in columns)
    await execute(db, f"UPDATE job_runs SET {sets} WHERE job_id = %s", *columns.values(), job_id)


def new_batch(db: Any, collectors: tuple[str, ...] = ("demo", "ninja")) -> tuple[str, list[str]]:
    """A batch with one queued job per collector, inserted with plain SQL (no app); returns
    its id and the job ids. For sync tests: it blocks (tests/support/database.py says why)."""
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO job_batches (batch_id) VALUES ('bc_' || lpad((random()*1e8)::int::text, 8, '0'))"
            " RETURNING batch_id"
        )
        batch_id = cur.fetchone()[0]
        jobs = []
        for i, name in enumerate(collectors):
            cur.execute(
                "INSERT INTO job_runs (job_id, batch_id, collector, job_name, position)"
                " VALUES (%s || '_' || lpad((random()*1e8)::int::text, 8, '0'), %s, %s, %s, %s) RETURNING job_id",
                (name[:2], batch_id, name, f"{name}-collector", i),
            )
            jobs.append(cur.fetchone()[0])
    return batch_id, jobs
