"""The CLI's output into a pipe whose reader has gone, as in `collector-hub logs JOB | head`: the
command stops quietly with the shell's status for it, never a traceback."""

from __future__ import annotations

import os
import subprocess

from tests.support.processes import clean_environment, collector_hub_command


def test_a_reader_that_stopped_reading_gets_no_traceback() -> None:
    reader, writer = os.pipe()
    os.close(reader)  # the reader (head) has taken what it wanted and gone
    try:
        result = subprocess.run(
            [*collector_hub_command(), "collectors", "list"],
            stdout=writer,
            stderr=subprocess.PIPE,
            env=clean_environment(),
            timeout=60,
        )
    finally:
        os.close(writer)
    assert result.returncode == 141  # 128 + SIGPIPE, as a shell reports a tool a closed pipe stopped
    assert result.stderr == b"", result.stderr.decode()
