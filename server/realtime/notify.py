"""What a NOTIFY says, and what this process remembers of it.

The trigger in sql/002_notify.sql sends small payloads: a batch id, the seq of the change and,
for a job row, the job id and its new status. They are wake-ups (docs/ARCHITECTURE.md, rule 1):
the state itself is re-read from the tables. This module parses them, remembers the newest seq
notified per batch (so that a read which raced a commit is spotted), and tells whoever
registered that a job was queued or ended: the runner and the webhook dispatcher register here
at setup, so nothing in ``server/realtime/`` imports them.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re
from collections.abc import Callable

from collectors.contract import TERMINAL_STATUSES

log = logging.getLogger(__name__)

# How many batches' latest notified seq is remembered, cached or not (to spot a read that
# raced a commit); far more than can change while one read is in flight.
NOTIFIED_MEMORY = 10_000


@dataclasses.dataclass(slots=True)
class Notification:
    """One parsed payload; ``job_id`` and ``status`` are set for a job row's change."""

    batch_id: str
    seq: int
    kind: str | None = None
    job_id: str | None = None
    status: str | None = None


# The payloads are parsed with the decoder's ``raw_decode``, one call into json's C scanner:
# ``json.loads`` adds three Python calls and two regular-expression matches around it, a third
# of the parse's CPU in a process that each state wakes cold (docs/LIVE_PUSH.md, the fixed
# cost per state).
_DECODER = json.JSONDecoder()


def _decode(payload: str) -> object:
    """The payload's JSON value; ValueError unless the whole payload is one JSON document."""
    value, end = _DECODER.raw_decode(payload)
    if end != len(payload):
        raise ValueError("extra data after the JSON document")
    return value


# How payloads start (json_build_object's layout): a job's or a batch's change, the payload of
# every pushed state, is told from the others without parsing it twice; a log payload too.
STATE_PAYLOAD_PREFIXES = ('{"kind" : "job"', '{"kind" : "batch"')
_LOG_PREFIX = '{"kind" : "log"'


def parse_log_wake_up(payload: str) -> str | None:
    """The job id of a new-log-lines payload (sql/006_run_operations.sql), else None."""
    if not payload.startswith(_LOG_PREFIX):
        return None
    try:
        job_id = _decode(payload)["job_id"]  # type: ignore[index]
    except (ValueError, KeyError, TypeError):
        job_id = None
    if not isinstance(job_id, str):
        log.warning("ignoring malformed notification %r", payload[:200])
        return None
    return job_id


# What a variances payload is (sql/015_variance_push.sql): new changes, nothing more to parse.
_VARIANCES_PAYLOAD = '{"kind" : "variances"}'


def is_variance_wake_up(payload: str) -> bool:
    """Whether the payload says the variances changed (a checks run or an operator committed)."""
    return payload == _VARIANCES_PAYLOAD


# A change's fields: batch id, seq, kind, job id, status (the last three None when absent).
Change = tuple[str, int, str | None, str | None, str | None]


# A job's change in exactly the trigger's layout (sql/002_notify.sql, json_build_object's), with
# no quote or escape inside its strings and a seq as json writes it: the ids, the seq, the status.
_JOB_CHANGE = re.compile(
    r'\{"kind" : "job", "job_id" : "([^"\\]*)", "batch_id" : "([^"\\]*)", '
    r'"seq" : ([1-9][0-9]*), "status" : "([^"\\]*)"\}'
)


def parse_change(payload: str) -> Change | None:
    """The payload's fields, or None (logged) when it is not one of ours.

    A job's change in exactly the trigger's layout is read with one match of ``_JOB_CHANGE``:
    every state pushed starts as one, and a process woken for it runs this cold, where json's
    scanner costs two to three times as much, and cutting the payload at its quotes half as
    much again as the match (docs/LIVE_PUSH.md, the fixed cost per state). Anything else is
    parsed as JSON: the same fields either way."""
    match = _JOB_CHANGE.fullmatch(payload)
    if match is not None:
        job_id, batch_id, seq, status = match.groups()
        return batch_id, int(seq), "job", job_id, status
    try:
        message = _decode(payload)
        if not isinstance(message, dict):
            raise TypeError("not an object")
        batch_id = str(message["batch_id"])
        seq_value = int(message["seq"])
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring malformed notification %r", payload[:200])
        return None
    kind, job, job_status = message.get("kind"), message.get("job_id"), message.get("status")
    return (
        batch_id,
        seq_value,
        kind if isinstance(kind, str) else None,
        job if isinstance(job, str) else None,
        job_status if isinstance(job_status, str) else None,
    )


def parse_notification(payload: str) -> Notification | None:
    """The payload's fields (``parse_change``) as a Notification, or None (logged)."""
    change = parse_change(payload)
    return None if change is None else Notification(*change)


class NotifiedSeqs:
    """The newest seq notified per batch (the most recent ``size`` batches), and overall."""

    def __init__(self, size: int = NOTIFIED_MEMORY) -> None:
        self._size = size
        self._seqs: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.high_water = 0

    def note(self, batch_id: str, seq: int) -> None:
        if seq > self.high_water:
            self.high_water = seq
        seqs = self._seqs
        if seq > seqs.get(batch_id, 0):
            seqs[batch_id] = seq
            seqs.move_to_end(batch_id)
            if len(seqs) > self._size:
                seqs.popitem(last=False)

    def latest(self, batch_id: str) -> int:
        """The newest seq notified for the batch; 0 if none is remembered."""
        return self._seqs.get(batch_id, 0)


class JobWakeUps:
    """Callbacks for "a job was queued" and "a job ended" (which may have ended its batch, and
    so put a delivery in the webhook outbox). Each is cheap and synchronous: it runs in the
    listener's reader callback."""

    def __init__(self) -> None:
        self._queued: list[Callable[[], None]] = []
        self._ended: list[Callable[[], None]] = []
        self._ended_jobs: list[Callable[[str, str], None]] = []

    def when_job_queued(self, callback: Callable[[], None]) -> None:
        self._queued.append(callback)

    def when_job_ended(self, callback: Callable[[], None]) -> None:
        self._ended.append(callback)

    def when_job_ended_by_id(self, callback: Callable[[str, str], None]) -> None:
        """Like ``when_job_ended``, told which job ended and its status: for a runner, which
        stops its process of a job that ended elsewhere (cancelled, failed by a watchdog)."""
        self._ended_jobs.append(callback)

    def fire(self, notification: Notification) -> None:
        if notification.kind != "job":
            return
        if notification.status == "queued":
            callbacks = self._queued
        elif notification.status in TERMINAL_STATUSES:
            callbacks = self._ended
        else:
            return
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one broken wake-up must not stop the others, nor the hub
                log.exception("job wake-up %r failed", callback)
        if callbacks is self._ended and notification.job_id is not None and notification.status is not None:
            for job_callback in self._ended_jobs:
                try:
                    job_callback(notification.job_id, notification.status)
                except Exception:
                    log.exception("job wake-up %r failed", job_callback)
