"""Schedules declared in the collectors file, beside the collectors they start::

    [schedules.nightly-inventory]
    collectors = ["ninja", "threatlocker"]
    cron = "0 2 * * *"
    timezone = "Europe/Paris"      # optional, default UTC
    priority = "normal"            # optional
    overlap = "skip"               # optional: skip or queue
    catch_up = "none"              # optional: none or latest
    enabled = true                 # optional

The table key is the schedule's name. They are checked when the server starts (a bad one stops
it, naming the file and the schedule) and upserted by name (``store.upsert_declared``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from collectors.registry import RegistryError
from server.errors import ValidationError
from server.schedules.definition import ScheduleDefinition, definition_from

MAX_DECLARED = 200


def load_declared_schedules(path: Path | None, registry: Mapping[str, object]) -> tuple[ScheduleDefinition, ...]:
    """The ``[schedules.NAME]`` tables of the collectors file (none without a file)."""
    if path is None:
        return ()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"cannot read collectors file {path}: {exc}") from None
    table = data.get("schedules", {})
    if not isinstance(table, dict):
        raise RegistryError(f"{path}: [schedules] must be a table of [schedules.NAME] tables")
    if len(table) > MAX_DECLARED:
        raise RegistryError(f"{path}: at most {MAX_DECLARED} schedules may be declared, got {len(table)}")
    declared = []
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise RegistryError(f"{path}: [schedules.{name}] must be a table")
        if "name" in entry:
            raise RegistryError(f"{path}: [schedules.{name}] must not set name: the table key is the name")
        try:
            declared.append(definition_from({**entry, "name": name}, registry))
        except ValidationError as exc:
            raise RegistryError(f"{path}: [schedules.{name}]: {exc.message}") from None
    return tuple(declared)
