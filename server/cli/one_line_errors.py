"""How a command says it cannot go on: one line on stderr, never a stack trace for a user's
mistake. Apart from console.py (settings and logging), so that ``progress``, which a shell
collector may run for every page, says so without importing the settings."""

from __future__ import annotations

import sys


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fail(command: str, problem: str, status: int = 1) -> int:
    """Print ``collector-hub COMMAND: error: PROBLEM`` on stderr and return the exit status."""
    print(f"collector-hub {command}: error: {problem}", file=sys.stderr)
    return status


def database_unreachable(command: str, exc: BaseException) -> int:
    return fail(command, f"cannot reach the database: {first_line(exc)}")
