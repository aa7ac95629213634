"""What every benchmark needs: a database and a real `collector-hub serve` process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# BENCH_PROJECT_ROOT measures another checkout (e.g. a branch) with the same bench.
ROOT = Path(os.environ.get("BENCH_PROJECT_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

from server.db.database import apply_migrations, start_embedded_server  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database() -> Iterator[str]:
    """COLLECTOR_HUB_DATABASE_URL if set (the bench writes to it), else an embedded
    PostgreSQL of the bench's own, deleted afterwards. Migrated either way."""
    dsn = os.environ.get("COLLECTOR_HUB_DATABASE_URL")
    if dsn:
        apply_migrations(dsn)
        yield dsn
        return

    with tempfile.TemporaryDirectory(prefix="ch-bench-") as tmp:
        pg = start_embedded_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            apply_migrations(pg.get_uri())
            yield pg.get_uri()
        finally:
            pg.cleanup()


@contextlib.contextmanager
def served(dsn: str, **settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A serve process on a free loopback port (no runner, no rate limit, quiet logs unless
    overridden; ``workers="2"``: two processes on the port, children of the one yielded;
    asyncio's event loop unless ``loop="uvloop"`` or COLLECTOR_HUB_LOOP says otherwise, so that
    a figure does not change with what happens to be installed); yields its base URL once
    /readyz answers 200, and the process."""
    port = free_port()
    env = {
        "COLLECTOR_HUB_LOOP": "asyncio",
        **os.environ,
        "COLLECTOR_HUB_DATABASE_URL": dsn,
        "COLLECTOR_HUB_RUN_COLLECTORS": "0",
        "COLLECTOR_HUB_LOG_LEVEL": "WARNING",
        "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "0",
        **{f"COLLECTOR_HUB_{name.upper()}": value for name, value in settings.items()},
    }
    server = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port)], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with status {server.returncode}")
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):  # not up yet, or slow: a loaded machine
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready within 60 s")
            time.sleep(0.1)
        yield base, server
    finally:
        server.terminate()
        server.wait(30)
