"""A step of a batch, for the tests of steps that run after others and of retries.

Appends "$STEP_NAME start" and later "$STEP_NAME end" to $STEP_RECORD (one write each,
O_APPEND: safe from many processes). With $STEP_GATE it waits, after starting, until that file
exists. It exits with $STEP_EXIT (default 0); with $STEP_COUNT_FILE and $STEP_FAILS=N, its first
N runs (counted in that file) print $STEP_REASON on stderr and exit with $STEP_EXIT instead,
and later runs exit 0.
"""

import os
import sys
import time
from pathlib import Path


def record(event: str) -> None:
    fd = os.open(os.environ["STEP_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{os.environ['STEP_NAME']} {event} {os.environ['COLLECTOR_HUB_JOB_ID']}\n".encode())
    os.close(fd)


record("start")
gate = os.environ.get("STEP_GATE")
if gate:
    print("@progress 10 Waiting for the gate", flush=True)
    while not Path(gate).exists():
        time.sleep(0.02)
code = int(os.environ.get("STEP_EXIT", "0"))
count_file = os.environ.get("STEP_COUNT_FILE")
if count_file:
    path = Path(count_file)
    runs = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(runs))
    if runs > int(os.environ.get("STEP_FAILS", "0")):
        code = 0
if code:
    print(os.environ.get("STEP_REASON", "the step failed"), file=sys.stderr, flush=True)
record("end")
sys.exit(code)
