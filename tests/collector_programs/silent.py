"""Reports once, records its pid in $PID_FILE, then goes silent forever."""

import os
import time

from collectors.progress import update_job_progress

update_job_progress(None, "running", 10, "Said something once")
with open(os.environ["PID_FILE"], "w") as f:
    f.write(f"{os.getpid()}\n")
while True:
    time.sleep(1)
