"""The cross-vendor checks as a collector: compare the latest complete NinjaOne and ThreatLocker
inventories and bring the variances up to date (collectors/variance_checks.py,
docs/VARIANCES.md).

Like the vendor collectors, it is started by a runner with ``COLLECTOR_HUB_JOB_ID`` and
``COLLECTOR_HUB_DATABASE_URL`` in its environment, reports progress on its job, and completes
the job in the transaction that writes the variances (so a job cancelled meanwhile leaves the
variances as they were). Its settings are the ``CROSS_VENDOR_*`` variables
(collectors/variance_settings.py). On any failure it says why on stderr and in the job, and
exits 1.

    python -m collectors.cross_vendor_checks
"""

from __future__ import annotations

import contextlib
import os
import sys

import psycopg2

from collectors.contract import DATABASE_URL_ENV, JOB_ID_ENV
from collectors.inventory_records import PLATFORMS
from collectors.progress import ProgressError, update_job_progress
from collectors.variance_checks import run_checks
from collectors.variance_settings import VarianceSettingsError, load_variance_settings

NAME = "cross-vendor-checks"
ERROR_CHARS = 1000


def _fail(error: str, *, report: bool = True) -> int:
    error = error[:ERROR_CHARS]
    print(f"{NAME}: {error}", file=sys.stderr, flush=True)
    if report:
        with contextlib.suppress(ProgressError, psycopg2.Error):
            update_job_progress(None, "failed", None, error)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(f"{NAME}: unknown arguments {' '.join(args)!r}; it takes none", file=sys.stderr)
        return 2
    job_id = os.environ.get(JOB_ID_ENV, "")
    dsn = os.environ.get(DATABASE_URL_ENV, "")
    if not job_id or not dsn:
        return _fail(f"run by a runner only ({JOB_ID_ENV} and {DATABASE_URL_ENV} are not set)", report=False)
    try:
        settings = load_variance_settings(os.environ, PLATFORMS)
    except VarianceSettingsError as exc:
        return _fail(str(exc))
    try:
        update_job_progress(None, "running", 10, "Comparing the latest complete NinjaOne and ThreatLocker inventories")
        conn = psycopg2.connect(dsn, application_name="collector-hub-cross-vendor-checks", connect_timeout=10)
        try:
            result = run_checks(conn, settings, job_id=job_id)
        finally:
            conn.close()
    except ProgressError as exc:  # the job ended elsewhere (cancelled, the watchdog): nothing was written
        print(f"{NAME}: stopping: {exc}", file=sys.stderr)
        return 1
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _fail(f"database error, nothing was changed: {first}")
    print(f"{NAME}: {result.message()}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
