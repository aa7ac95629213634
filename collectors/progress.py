"""Progress reports from collector code, written straight to PostgreSQL.

Inside a collector started by a runner::

    from collectors.progress import update_job_progress

    update_job_progress(job_id, "running", 50, "Processing devices...")
    update_job_progress(job_id, "completed", 100, "Collection completed")

``job_id`` may be ``None`` to mean the job this process runs (``COLLECTOR_HUB_JOB_ID``); the
database comes from ``COLLECTOR_HUB_DATABASE_URL``. Both are set by the runner. One
connection is opened on first use and reused for the life of the process.

Every update is checked before anything is written: an invalid one raises
:class:`ProgressError` (a ``ValueError``) and changes nothing. Terminal states are final: once
a job is completed, failed or cancelled (by itself, a user or the watchdog) further updates
raise. Each accepted update also stamps ``last_progress_at``, which the watchdog reads to tell
a working collector from a stuck one.

Programs that cannot import Python can run ``collector-hub progress JOB_ID STATUS PERCENT
MESSAGE`` or print progress lines on stdout (see ``server/runner/protocol.py``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from collectors.contract import (
    DATABASE_URL_ENV,
    JOB_ID,
    JOB_ID_ENV,
    MAX_ERROR_CHARS,
    MAX_MESSAGE_CHARS,
    PERCENT_RULE,
    REPORTABLE_STATUSES,
    checked_percent,
    text_problem,
)

# A lost race with a concurrent writer of the same batch is retried, not reported.
RETRYABLE = (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure)
ATTEMPTS = 3
RULE_VIOLATIONS = frozenset({"CH001", "CH002"})


class ProgressError(ValueError):
    """An update that cannot be applied: bad arguments, an unknown job, or a job that has
    already ended. Nothing was written."""


class NotInAJobError(ProgressError):
    """The process was not started by a runner: no job id or database given, and neither
    ``COLLECTOR_HUB_JOB_ID`` nor ``COLLECTOR_HUB_DATABASE_URL`` to fall back on."""


def _check_text(name: str, value: object, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProgressError(f"{name} must be a string or None, got {type(value).__name__}")
    problem = text_problem(name, value, limit)
    if problem is not None:
        raise ProgressError(problem)
    return value


def check_update(
    job_id: object, status: object, percent: object, message: object, error: object = None
) -> tuple[str, str, int | None, str | None, str | None]:
    """Validate one update; return it typed, or raise :class:`ProgressError`.

    ``job_id`` ``None`` (or empty) means ``$COLLECTOR_HUB_JOB_ID``. A ``failed`` update
    without an ``error`` uses its message as the error, so the batch can say why.
    """
    if job_id is None or job_id == "":
        job_id = os.environ.get(JOB_ID_ENV, "")
        if not job_id:
            raise NotInAJobError(f"no job id given and {JOB_ID_ENV} is not set (is this running outside a job?)")
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise ProgressError(f"malformed job id {job_id!r}: expected two letters or digits, '_', then 8 digits")
    if status not in REPORTABLE_STATUSES:
        raise ProgressError(f"status must be one of {', '.join(REPORTABLE_STATUSES)}; got {status!r}")
    assert isinstance(status, str)
    if percent is not None:
        try:
            percent = checked_percent(percent)
        except ValueError:
            raise ProgressError(f"percent must be {PERCENT_RULE}, or None; got {percent!r}") from None
    checked_message = _check_text("message", message, MAX_MESSAGE_CHARS)
    checked_error = _check_text("error", error, MAX_ERROR_CHARS)
    if status == "failed" and checked_error is None:
        checked_error = checked_message
    return job_id, status, percent, checked_message, checked_error


class _Connection:
    """One connection per process (and per DSN), rebuilt after a fork or a broken link."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Any = None
        self._dsn: str | None = None
        self._pid = 0

    def get(self, dsn: str) -> Any:
        if self._conn is not None and (self._conn.closed or self._dsn != dsn or self._pid != os.getpid()):
            self.close()
        if self._conn is None:
            self._conn = psycopg2.connect(dsn, application_name="collector-hub-progress", connect_timeout=10)
            self._dsn, self._pid = dsn, os.getpid()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            # A connection inherited through fork belongs to the parent: do not close its socket.
            if self._pid == os.getpid() and not self._conn.closed:
                self._conn.close()
            self._conn = None


_connection = _Connection()


def close_connection() -> None:
    """Close this process's progress connection (it reopens on the next update)."""
    with _connection._lock:
        _connection.close()


_UPDATE = """
    UPDATE job_runs
       SET status = %(status)s,
           progress_percent = coalesce(%(percent)s, progress_percent),
           message = coalesce(%(message)s, message),
           error = coalesce(%(error)s, error),
           last_progress_at = clock_timestamp()
     WHERE job_id = %(job_id)s AND NOT collector_hub_is_terminal(status)
    RETURNING job_id
"""


def _apply(conn: Any, values: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        # Lock the batch before the job, the order every other writer uses, so that a
        # concurrent cancel of the same batch cannot deadlock with us.
        cur.execute(
            "SELECT j.status FROM job_batches b JOIN job_runs j USING (batch_id)"
            " WHERE j.job_id = %(job_id)s FOR UPDATE OF b",
            values,
        )
        row = cur.fetchone()
        if row is None:
            raise ProgressError(f"unknown job {values['job_id']}")
        cur.execute(_UPDATE, values)
        if cur.fetchone() is None:
            cur.execute("SELECT status FROM job_runs WHERE job_id = %(job_id)s", values)
            current = cur.fetchone()
            state = current[0] if current else "gone"
            raise ProgressError(f"job {values['job_id']} is already {state}; terminal states are final")


def apply_update_in_transaction(
    conn: Any, job_id: str | None, status: str, percent: int | None = None, message: str | None = None
) -> None:
    """The update of :func:`update_job_progress`, made inside the caller's open transaction on
    ``conn`` (a psycopg2 connection), so that a collector can commit its own writes and its
    final status together, or neither. Raises :class:`ProgressError` like the other."""
    job_id, status, percent, message, error = check_update(job_id, status, percent, message)
    _apply(conn, {"job_id": job_id, "status": status, "percent": percent, "message": message, "error": error})


def update_job_progress(
    job_id: str | None,
    status: str,
    percent: int | None = None,
    message: str | None = None,
    *,
    error: str | None = None,
    database_url: str | None = None,
) -> None:
    """Record a progress update for a job; raise :class:`ProgressError` if it is invalid.

    ``percent`` and ``message`` left as ``None`` keep their previous values; ``percent`` follows
    ``collectors.contract.checked_percent`` (50.0 is 50). Database outages raise
    ``psycopg2.OperationalError`` after one reconnect attempt.
    """
    job_id, status, percent, message, error = check_update(job_id, status, percent, message, error)
    dsn = database_url or os.environ.get(DATABASE_URL_ENV)
    if not dsn:
        raise NotInAJobError(
            f"{DATABASE_URL_ENV} is not set (is this running outside a job?); cannot reach the database"
        )
    values = {"job_id": job_id, "status": status, "percent": percent, "message": message, "error": error}
    with _connection._lock:
        for attempt in range(1, ATTEMPTS + 1):
            conn = _connection.get(dsn)
            try:
                with conn:  # one transaction: commit, or roll back on any exception
                    _apply(conn, values)
                return
            except RETRYABLE:
                if attempt == ATTEMPTS:
                    raise
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                # A broken connection (server restart, idle timeout): reconnect once.
                _connection.close()
                if attempt >= 2:
                    raise
            except psycopg2.Error as exc:
                # CH001/CH002: the schema's triggers refused the change (a job that ended
                # between our check and our write, or a forbidden transition).
                if exc.pgcode in RULE_VIOLATIONS:
                    raise ProgressError(exc.diag.message_primary or str(exc)) from None
                raise
