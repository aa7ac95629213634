"""Prints 120 numbered lines over about six seconds, then an error-looking line on stderr: a
job whose log the console tails while it runs."""

import sys
import time

for i in range(1, 121):
    print(f"line {i}", flush=True)
    time.sleep(0.05)
print("Traceback: a warning on stderr", file=sys.stderr, flush=True)
time.sleep(1)
