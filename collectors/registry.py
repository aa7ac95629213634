"""Which collectors exist and how to run each: built-ins plus a TOML file.

A collectors file (``COLLECTOR_HUB_COLLECTORS_FILE``) looks like::

    [collectors.ninja]
    command = ["python", "-m", "my_company.ninja_collector"]
    env = { NINJA_REGION = "eu" }
    timeout = 3600           # seconds; the job fails when it runs longer
    job_name = "ninja-collector"   # optional; defaults to NAME-collector

Entries in the file replace built-ins of the same name. The file may also declare
``[schedules.NAME]`` tables; the server reads those (server/schedules/declared.py).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The first two characters become the job id prefix (``ni_12345678``), so both must be
# letters or digits; the rest may add dashes and underscores.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9][a-z0-9_-]{0,30}$")
DEFAULT_TIMEOUT = 3600.0
MAX_TIMEOUT = 7 * 24 * 3600.0
# The keys a collectors file may hold: the top level, and each [collectors.NAME] table.
# docs/COLLECTORS.md documents every one (tests/test_collectors_doc.py checks).
FILE_KEYS = ("collectors", "schedules")
ENTRY_KEYS = ("command", "env", "timeout", "job_name")


class RegistryError(ValueError):
    """The collectors file is not valid."""


@dataclasses.dataclass(frozen=True)
class CollectorSpec:
    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    job_name: str = ""

    @property
    def id_prefix(self) -> str:
        return self.name[:2]

    @property
    def display_name(self) -> str:
        return self.job_name or f"{self.name}-collector"


def builtin_collectors() -> dict[str, CollectorSpec]:
    python = sys.executable
    return {
        "demo": CollectorSpec("demo", (python, "-m", "collectors.demo")),
        "ninja": CollectorSpec("ninja", (python, "-m", "collectors.ninja")),
        "threatlocker": CollectorSpec("threatlocker", (python, "-m", "collectors.threatlocker")),
    }


def _parse_entry(name: str, entry: Any, where: str) -> CollectorSpec:
    if not NAME_PATTERN.match(name):
        raise RegistryError(
            f"{where}: collector name {name!r} must match {NAME_PATTERN.pattern} "
            "(lower case; the first two characters become the job id prefix)"
        )
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: [collectors.{name}] must be a table")
    unknown = set(entry) - set(ENTRY_KEYS)
    if unknown:
        raise RegistryError(f"{where}: [collectors.{name}] has unknown keys: {', '.join(sorted(unknown))}")
    command = entry.get("command")
    if isinstance(command, str):
        command = [command]
    if not isinstance(command, list) or not command or not all(isinstance(c, str) and c for c in command):
        raise RegistryError(f"{where}: collectors.{name}.command must be a non-empty list of strings")
    env = entry.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise RegistryError(f"{where}: collectors.{name}.env must be a table of strings")
    timeout = entry.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise RegistryError(f"{where}: collectors.{name}.timeout must be seconds between 0 and {MAX_TIMEOUT:g}")
    job_name = entry.get("job_name", "")
    if not isinstance(job_name, str) or len(job_name) > 100:
        raise RegistryError(f"{where}: collectors.{name}.job_name must be a string of at most 100 characters")
    return CollectorSpec(name, tuple(command), dict(env), float(timeout), job_name)


def load_registry(path: Path | None = None) -> dict[str, CollectorSpec]:
    """Built-in collectors, overlaid with the entries of ``path`` if given."""
    registry = builtin_collectors()
    if path is None:
        return registry
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read collectors file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - set(FILE_KEYS)
    if unknown:
        raise RegistryError(f"{path}: unknown top-level keys: {', '.join(sorted(unknown))}")
    table = data.get("collectors", {})
    if not isinstance(table, dict):
        raise RegistryError(f"{path}: [collectors] must be a table")
    for name, entry in table.items():
        registry[name] = _parse_entry(name, entry, str(path))
    return registry
