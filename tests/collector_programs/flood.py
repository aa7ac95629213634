"""Prints $FLOOD_LINES progress lines as fast as it can; the last is 77%."""

import os
import sys

lines = int(os.environ.get("FLOOD_LINES", "20000"))
write = sys.stdout.write
for n in range(lines):
    write(f"@progress {n % 70} Line {n}\n")
write("@progress 77 Final flood line\n")
