"""Prints garbage among valid progress lines, waits for $RELEASE_FILE to exist, then exits 0."""

import os
import sys
import time

out = sys.stdout.buffer
out.write(b"\xff\xfe not utf-8 \x00 with NUL\n")
out.write(b"@progress 150 out of range\n")
out.write(b"@progress {not json\n")
out.write(b'@progress {"percent": "50"}\n')
out.write(b"x" * 200_000 + b"\n")  # an overlong line
out.write(b"@progress 40 Forty percent \xff\x00 with junk\n")
out.write(b"@progress " + b"7" * 100_000 + b"\n")
out.write(b"@progress - Only a message\n")
out.write(b'@progress {"percent": 60, "message": "Sixty via JSON"}\n')
out.write(b"@progress 70\n")
out.flush()
while not os.path.exists(os.environ["RELEASE_FILE"]):
    time.sleep(0.02)
out.write(b"@progress 90 no newline at the end")
