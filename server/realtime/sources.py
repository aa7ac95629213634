"""What live push reads, and from whom: the seams between realtime and the features whose
state it pushes (docs/ARCHITECTURE.md, the layers).

Realtime sits below runs and job logs: it never imports them. It reads a batch with its jobs,
a job's log lines and the variances' changes through these interfaces; ``server/runs/live.py``,
``server/joblogs/live.py`` and ``server/variances/live.py`` implement them, and the app hands
them to the hub at setup (``server/app.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

import aiopg

from server.realtime.events import BatchSnapshot, Event


class Reader(Protocol):
    """A connection other than the pool's that can run one read-only statement (the LISTEN
    connection: ``Listener.read``); None when it cannot now, and the pool is used instead."""

    async def read(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]] | None: ...


class BatchSource(Protocol):
    """Batches and their jobs as events, read from the tables (ARCHITECTURE rules 1 and 3)."""

    async def batch_snapshot(
        self,
        pool: aiopg.Pool,
        *,
        batch_id: str | None = None,
        job_id: str | None = None,
        reader: Reader | None = None,
    ) -> BatchSnapshot | None:
        """The batch ``batch_id`` (or the batch of ``job_id``) with its jobs, or None; read
        with ``reader`` when it can, else from ``pool``."""
        ...

    def snapshot_statement(self, batch_id: str) -> tuple[str, Sequence[Any]]:
        """The statement (and its parameters) that reads the batch with its jobs, for a caller
        that runs it itself (on the LISTEN connection); ``snapshot_from`` shapes its rows."""
        ...

    def snapshot_from(self, rows: Sequence[Sequence[Any]]) -> BatchSnapshot | None:
        """The snapshot in the rows of ``snapshot_statement``; None when there is no such batch."""
        ...

    async def latest_run_events(
        self, pool: aiopg.Pool, collectors: Sequence[str], since: int | None = None, limit: int = 0
    ) -> list[Event]:
        """Per collector, its active run else its most recent one, and with ``since`` also the
        runs whose batch changed after that seq (the newest ``limit``), as job events in seq order, one per run."""
        ...

    async def batch_seqs(self, pool: aiopg.Pool, batch_ids: Sequence[str]) -> dict[str, int]:
        """The current seq of each of these batches that still exists."""
        ...

    async def batches_changed_since(self, pool: aiopg.Pool, seq: int, since: dt.datetime | None) -> dict[str, int]:
        """Batches whose seq is above ``seq`` or that changed after ``since``, with their seq."""
        ...


@dataclasses.dataclass(frozen=True)
class LogPage:
    """Lines of a job's log, read once for every follower of the job."""

    status: str  # the job's status, read in the same snapshot as the lines
    numbers: list[int]
    bodies: list[bytes]  # each line's JSON
    header: bytes | None = None  # a JSON object sent ahead of the lines (the variances' counts)


class LogSource(Protocol):
    """A job's log lines (ARCHITECTURE rule 13)."""

    async def read_log(self, pool: aiopg.Pool, job_id: str, after: int, limit: int) -> LogPage | None:
        """Up to ``limit`` lines numbered above ``after``; None when there is no such job."""
        ...


class VarianceSource(Protocol):
    """The variances' changes, numbered by seq, each with the variance as its GET shows it; each
    page has the open counts as its header (read in the same snapshot)."""

    async def read_log(self, pool: aiopg.Pool, key: str, after: int, limit: int) -> LogPage | None:
        """Up to ``limit`` changes numbered above ``after`` (``key`` is always ``variances``)."""
        ...

    async def latest_seq(self, pool: aiopg.Pool) -> int:
        """The seq of the newest change (0 when there is none): where a new follower starts."""
        ...


@dataclasses.dataclass(frozen=True)
class LiveSources:
    batches: BatchSource
    logs: LogSource
    variances: VarianceSource | None = None
