"""Writes 30 numbered lines to stderr, then exits with code 3."""

import sys

for n in range(1, 31):
    print(f"crash line {n}", file=sys.stderr)
sys.exit(3)
