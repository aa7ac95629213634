"""The demo collector: simulates a paged collection so progress can be watched with no
credentials. About ten seconds over ten pages by default.

Environment (all optional):

- ``DEMO_PAGES``: how many pages (1-10000, default 10)
- ``DEMO_PAGE_SECONDS``: delay per page (0-3600, default 1.0)
- ``DEMO_FAIL_AT_PAGE``: fail on this page (exit 1 with an error on stderr), to see a failure
"""

from __future__ import annotations

import os
import sys
import time

from collectors.progress import ProgressError, update_job_progress

# Its settings, read from the environment (docs/COLLECTORS.md documents each).
SETTINGS = ("DEMO_PAGES", "DEMO_PAGE_SECONDS", "DEMO_FAIL_AT_PAGE")


class DemoConfigError(ValueError):
    """A DEMO_* variable has a value the demo cannot use."""


def _read_number(name: str, default: float, lo: float, hi: float, *, integer: bool) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise DemoConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise DemoConfigError(f"{name} must be between {lo:g} and {hi:g}, got {raw!r}")
    return value


def main() -> int:
    try:
        pages = int(_read_number("DEMO_PAGES", 10, 1, 10_000, integer=True))
        page_seconds = _read_number("DEMO_PAGE_SECONDS", 1.0, 0, 3600, integer=False)
        fail_at = int(_read_number("DEMO_FAIL_AT_PAGE", 0, 0, 10_000, integer=True))
    except DemoConfigError as exc:
        print(f"demo: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return _collect(pages, page_seconds, fail_at)
    except ProgressError as exc:  # e.g. the job was cancelled: stop quietly, the job says why
        print(f"demo: stopping: {exc}", file=sys.stderr)
        return 1


def _collect(pages: int, page_seconds: float, fail_at: int) -> int:
    # What it does goes to stdout too, so the job's log shows the run (docs/COLLECTORS.md).
    say(f"demo: collecting {pages} pages, {page_seconds:g} s each")
    update_job_progress(None, "running", 0, f"Starting demo collection of {pages} pages")
    for page in range(1, pages + 1):
        time.sleep(page_seconds)
        if page == fail_at:
            print(f"demo: simulated failure while fetching page {page}/{pages} (DEMO_FAIL_AT_PAGE)", file=sys.stderr)
            return 1
        say(f"demo: fetched page {page}/{pages}")
        percent = page * 100 // pages
        update_job_progress(None, "running", percent, f"Processing page {page}/{pages}")
    say(f"demo: done, {pages} pages collected")
    update_job_progress(None, "completed", 100, f"Demo collection completed: {pages} pages")
    return 0


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
