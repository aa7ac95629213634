"""Collectors for the runner under test: the test programs in tests/collector_programs/ and
the TOML collectors file that declares them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).resolve().parent.parent / "collector_programs"


def program(name: str) -> list[str]:
    """The command that runs tests/collector_programs/NAME.py."""
    return [sys.executable, str(PROGRAMS / f"{name}.py")]


def write_collectors_file(path: Path, collectors: dict[str, dict[str, Any]]) -> Path:
    """A TOML collectors file: each collector's ``command``, and its ``env``, ``timeout`` and
    any other key when given (JSON strings, numbers and arrays are valid TOML values)."""
    lines = []
    for name, entry in collectors.items():
        lines.append(f"[collectors.{name}]")
        lines.append(f"command = {json.dumps(entry['command'])}")
        if "env" in entry:
            pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in entry["env"].items())
            lines.append(f"env = {{ {pairs} }}")
        if "timeout" in entry:
            lines.append(f"timeout = {entry['timeout']}")
        for key, value in entry.items():  # any other key: a table inline, else its JSON
            if key in ("command", "env", "timeout"):
                continue
            if isinstance(value, dict):
                pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {pairs} }}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path
