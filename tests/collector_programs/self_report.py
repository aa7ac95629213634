"""Ends its own job with $FINAL_STATUS (via update_job_progress), then exits $EXIT_CODE."""

import os
import sys

from collectors.progress import update_job_progress

update_job_progress(None, "running", 50, "Halfway")
status = os.environ.get("FINAL_STATUS", "completed")
update_job_progress(None, status, None, f"Reported {status} by the collector")
print("a last word on stderr", file=sys.stderr)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
