"""Prints $CHATTY_LINES numbered lines on stdout (every 1000th is a progress report, every
100th goes to stderr), one line holding the configured secret, one 20 KB line, then exits
with $CHATTY_EXIT. With $CHATTY_WAIT_FILE it waits, half-way, until that file exists (so a test
can watch the log grow while the collector runs)."""

import os
import sys
import time
from pathlib import Path

lines = int(os.environ.get("CHATTY_LINES", "100"))
wait_file = os.environ.get("CHATTY_WAIT_FILE")
print(f"connecting with token {os.environ['CHATTY_API_TOKEN']} to the vendor")
print("x" * 20_000)
for n in range(1, lines + 1):
    if wait_file and n == lines // 2:
        sys.stdout.flush()
        while not Path(wait_file).exists():
            time.sleep(0.01)
    if n % 1000 == 0:
        print(f"@progress {min(99, n * 100 // lines)} Line {n}")
    elif n % 100 == 0:
        print(f"warning at line {n}", file=sys.stderr)
    else:
        print(f"line {n}")
sys.exit(int(os.environ.get("CHATTY_EXIT", "0")))
