"""The facts of the run-tracking contract, in one place.

Everything that names a status, checks an id, reads a ``COLLECTOR_HUB_*`` variable shared by
the server and a collector process, or enforces a length limit of the API imports it from
here: the server (validation, representation, OpenAPI, metrics, the CLI) and the collector
side (``collectors.progress``) alike. ``tests/test_contract.py`` fails when a copy appears
elsewhere.

This module imports nothing from the project, so anything may import it.
"""

from __future__ import annotations

import re
from typing import Final

# Job and batch statuses, in lifecycle order (the order lists and metrics show them in).
JOB_STATUSES: Final = ("queued", "running", "completed", "failed", "cancelled")
# A terminal status is final: the database refuses to change it (sql/001_runs.sql).
TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "cancelled"})
ACTIVE_STATUSES: Final = frozenset({"queued", "running"})
# What a collector (or a client on its behalf) may report; only the runner queues a job.
REPORTABLE_STATUSES: Final = ("running", "completed", "failed", "cancelled")

# Priorities, most urgent first: the order the runner claims in.
PRIORITIES: Final = ("high", "normal", "low")
DEFAULT_PRIORITY: Final = "normal"

# Roles, least to most: each implies the ones before it. ``public`` needs no credentials;
# the others can be granted to an API key or carried by a token.
ROLES: Final = ("public", "read", "trigger", "admin")
GRANTABLE_ROLES: Final = ROLES[1:]

# Ids: a batch is bc_ + 8 digits; a job is a two-character collector prefix + 8 digits.
BATCH_ID: Final = re.compile(r"^bc_[0-9]{8}$")
JOB_ID: Final = re.compile(r"^[a-z0-9]{2}_[0-9]{8}$")

# Limits on what a progress report may carry.
MAX_PERCENT: Final = 100
PERCENT_RULE: Final = f"an integer from 0 to {MAX_PERCENT}"
MAX_MESSAGE_CHARS: Final = 1000
MAX_ERROR_CHARS: Final = 4000
# The most entries GET /api/collectors/runs/history answers at once.
MAX_HISTORY: Final = 500

# Every setting of the server is COLLECTOR_HUB_<NAME>; the runner hands a collector process
# these two so that it can report progress with nothing configured.
ENV_PREFIX: Final = "COLLECTOR_HUB_"
JOB_ID_ENV: Final = ENV_PREFIX + "JOB_ID"
DATABASE_URL_ENV: Final = ENV_PREFIX + "DATABASE_URL"

# Schedules (server/schedules/, docs/SCHEDULES.md): what happens when a due time finds the
# previous batch still active, and which missed due times fire after downtime; defaults first.
SCHEDULE_OVERLAP_POLICIES: Final = ("skip", "queue")
SCHEDULE_CATCH_UP_POLICIES: Final = ("none", "latest")
# What a due time came to, as the API shows it (the metric also counts skipped_missed).
SCHEDULE_FIRE_OUTCOMES: Final = ("fired", "skipped_overlap", "skipped_invalid")


def text_problem(name: str, value: str, max_chars: int) -> str | None:
    """What makes ``value`` unfit for a text column of at most ``max_chars`` characters (too
    long, a NUL, a lone surrogate PostgreSQL cannot store), or None when it fits."""
    if len(value) > max_chars:
        return f"{name} must be at most {max_chars} characters, got {len(value)}"
    if "\x00" in value:
        return f"{name} must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name} must be valid Unicode text (no lone surrogates)"
    return None


def checked_percent(value: object) -> int:
    """The one rule for a progress percent, at every entry point (the Python API, the HTTP
    body, a collector's stdout line, ``collector-hub progress``): an integer from 0 to 100, in
    JSON Schema's sense of integer, so a number with no fractional part such as ``50.0`` is the
    integer 50 (JSON has one number type and many encoders write 50 as 50.0). Anything else, a
    boolean, a fraction, a string, raises ValueError."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PERCENT:
        raise ValueError(f"percent must be {PERCENT_RULE}, got {value!r}")
    return value


PERCENT_TEXT: Final = re.compile(r"[0-9]{1,3}")


def percent_from_text(text: str) -> int:
    """A percent written as text (a command-line argument, a plain ``@progress`` line): up to
    three decimal digits, then the rule of ``checked_percent``."""
    if not PERCENT_TEXT.fullmatch(text):
        raise ValueError(f"percent must be {PERCENT_RULE} written in digits, got {text!r}")
    return checked_percent(int(text))


# Job logs (issue 12): what the runner keeps of a collector's output, per job. Past either cap
# the newest lines are kept; a longer line is cut to MAX_LOG_LINE_BYTES with a marker.
DEFAULT_JOB_LOG_MAX_LINES: Final = 10_000
DEFAULT_JOB_LOG_MAX_BYTES: Final = 2 * 1024 * 1024
MAX_LOG_LINE_BYTES: Final = 8 * 1024
LOG_STREAMS: Final = ("stdout", "stderr", "system")
# Environment entries of a collector whose values are redacted from its logs (by name, any case).
SECRET_ENV_WORDS: Final = ("SECRET", "TOKEN", "PASSWORD", "KEY")
REDACTED: Final = "[redacted]"
# The most log lines GET .../logs answers at once.
MAX_LOG_PAGE: Final = 5000

# How a batch started (its ``started_by.kind``): by hand over the API (or the console, or the
# CLI), by a schedule (fired or "run now"), or as a re-run of another batch.
STARTED_BY_KINDS: Final = ("manual", "schedule", "rerun")

# Re-runs: what POST .../batch/{id}/rerun may re-run ("failed" means failed and cancelled).
RERUN_SCOPES: Final = ("failed", "all")
RERUN_STATUSES: Final = frozenset({"failed", "cancelled"})

# Statistics windows (GET /api/collectors/stats?window=): from an hour to 90 days.
MIN_STATS_WINDOW_SECONDS: Final = 3600
MAX_STATS_WINDOW_SECONDS: Final = 90 * 24 * 3600

# Steps that run after others in a batch (a collector's ``after`` and ``run_if``, docs/COLLECTORS.md):
# when a job waiting for others runs, once they have all ended; the first is the default.
RUN_IF_CONDITIONS: Final = ("any_succeeded", "all_succeeded", "always")

# Automatic retries (docs/COLLECTORS.md): the exit codes the vendor collectors end with. 78
# (EX_CONFIG, sysexits.h) says retrying cannot help (bad or missing credentials, a setting);
# 75 (EX_TEMPFAIL) says it may (the vendor unreachable, 5xx, 429s that outlasted the waits).
EXIT_CONFIG: Final = 78
EXIT_TEMPFAIL: Final = 75
DEFAULT_NO_RETRY_EXIT_CODES: Final = (EXIT_CONFIG,)

# Runner routing (docs/COLLECTORS.md, "Runner routing"): a label is KEY=VALUE; a collector's
# runner_labels must all be among a runner's COLLECTOR_HUB_RUNNER_LABELS for it to claim the job.
RUNNER_LABEL: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}=[A-Za-z0-9_.:/-]{1,128}$")

# Runners record a heartbeat this often; one silent for three heartbeats is not live.
RUNNER_HEARTBEAT_SECONDS: Final = 10.0
RUNNER_LIVE_SECONDS: Final = 3 * RUNNER_HEARTBEAT_SECONDS
