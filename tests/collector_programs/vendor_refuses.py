"""Prints a line, then an error on stderr, and exits 3: a job that fails, for re-runs."""

import sys

print("starting", flush=True)
print("Error: the vendor said no", file=sys.stderr, flush=True)
sys.exit(3)
