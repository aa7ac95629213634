"""A collector that writes many log lines, one with a secret in its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.settings import Settings
from tests.support.collectors_file import program, write_collectors_file
from tests.support.settings import replace_settings

TOKEN = "tok-0123456789-secret-value"


def chatty(settings: Settings, tmp_path: Path, lines: int = 3000, **changes: Any) -> Settings:
    """Settings whose runner runs tests/collector_programs/chatty.py: ``lines`` log lines carrying
    TOKEN (a secret to redact), once the file ``tmp_path / "go"`` exists, then exit 3."""
    collectors = write_collectors_file(
        tmp_path / f"collectors-{lines}.toml",
        {
            "chatty": {
                "command": program("chatty"),
                "env": {
                    "CHATTY_API_TOKEN": TOKEN,
                    "CHATTY_LINES": str(lines),
                    "CHATTY_EXIT": "3",
                    "CHATTY_WAIT_FILE": str(tmp_path / "go"),
                },
            }
        },
    )
    return replace_settings(
        settings,
        collectors_file=collectors,
        run_collectors=True,
        rate_limit_per_minute=0,
        **changes,
    )
