"""Which collectors exist and how to run each: built-ins plus a TOML file.

A collectors file (``COLLECTOR_HUB_COLLECTORS_FILE``) looks like::

    [collectors.ninja]
    command = ["python", "-m", "my_company.ninja_collector"]
    env = { NINJA_REGION = "eu" }
    timeout = 3600           # seconds; the job fails when it runs longer
    job_name = "ninja-collector"   # optional; defaults to NAME-collector
    stale_after = "26h"      # optional: health is stale with no success for this long
    alert_after_failures = 2 # optional: health is failing after this many failed runs in a row
    id_prefix = "nj"         # optional; defaults to the name's first two characters
    after = ["other"]        # optional; in a batch, wait for these collectors' jobs to end
    run_if = "any_succeeded" # then run if any of them succeeded (or all_succeeded, always)
    retries = 2              # optional; a failed run is tried again (default 2 for vendors, else 0)
    retry_delay = 30         # optional; seconds before the first retry, then * retry_backoff

Entries in the file replace built-ins of the same name; a key the entry does not give keeps
the built-in's value (its job name, id prefix, after, run_if, health keys). The file may also declare
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

from collectors.contract import DEFAULT_NO_RETRY_EXIT_CODES, RUN_IF_CONDITIONS, RUNNER_LABEL
from collectors.vendor_settings import vendor_of

# The first two characters become the job id prefix (``ni_12345678``), so both must be
# letters or digits; the rest may add dashes and underscores.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9][a-z0-9_-]{0,30}$")
# An explicit job id prefix (``id_prefix``): two letters or digits, as the job id pattern wants.
ID_PREFIX_PATTERN = re.compile(r"^[a-z0-9]{2}$")
MAX_AFTER = 20
DEFAULT_TIMEOUT = 3600.0
MAX_TIMEOUT = 7 * 24 * 3600.0
# The keys a collectors file may hold: the top level, and each [collectors.NAME] table.
# docs/COLLECTORS.md documents every one (tests/test_collectors_doc.py checks).
FILE_KEYS = ("collectors", "schedules")
ENTRY_KEYS = (
    "command",
    "env",
    "timeout",
    "job_name",
    "stale_after",
    "alert_after_failures",
    "id_prefix",
    "after",
    "run_if",
    "retries",
    "retry_delay",
    "retry_backoff",
    "retry_max_delay",
    "retry_jitter",
    "no_retry_exit_codes",
    "runner_labels",
)
# Automatic retries: the vendor collectors retry twice unless told otherwise (the setting
# COLLECTOR_HUB_VENDOR_RETRIES, or their entry's retries), the others never.
VENDOR_RETRIES = 2
MAX_RETRIES = 100
MAX_RETRY_SECONDS = 86400.0
MAX_RETRY_BACKOFF = 10.0
# Collector health (server/health/): the vendor collectors run daily, so a day and two hours
# without a success is stale; the others are never stale unless their entry says so.
VENDOR_STALE_AFTER = 26 * 3600.0
MAX_STALE_AFTER = 365 * 24 * 3600.0
MAX_ALERT_AFTER_FAILURES = 1000
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The built-in checks that compare the vendors' inventories, after their collectors ran.
CROSS_VENDOR_CHECKS = "cross-vendor-checks"


class RegistryError(ValueError):
    """The collectors file is not valid."""


@dataclasses.dataclass(frozen=True)
class CollectorSpec:
    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    job_name: str = ""
    stale_after: float | None = None  # seconds
    alert_after_failures: int = 1
    job_id_prefix: str = ""
    # In a batch, the job waits for the jobs of these collectors to end, then runs if run_if
    # holds over them (else it ends cancelled); a collector absent from the batch is ignored.
    after: tuple[str, ...] = ()
    run_if: str = RUN_IF_CONDITIONS[0]
    # A failed run is tried again up to ``retries`` times (docs/COLLECTORS.md, "Automatic
    # retries"), waiting retry_delay * retry_backoff^(n-1) seconds, at most retry_max_delay,
    # less up to a quarter with jitter; never after an exit code in no_retry_exit_codes.
    retries: int = 0
    retry_delay: float = 30.0
    retry_backoff: float = 2.0
    retry_max_delay: float = 600.0
    retry_jitter: bool = True
    no_retry_exit_codes: tuple[int, ...] = DEFAULT_NO_RETRY_EXIT_CODES
    # Only a runner carrying every one of these labels (KEY=VALUE) claims the collector's jobs.
    runner_labels: tuple[str, ...] = ()

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    @property
    def id_prefix(self) -> str:
        return self.job_id_prefix or self.name[:2]

    @property
    def display_name(self) -> str:
        return self.job_name or f"{self.name}-collector"


def builtin_collectors(vendor_retries: int = VENDOR_RETRIES) -> dict[str, CollectorSpec]:
    python = sys.executable
    vendor = {"stale_after": VENDOR_STALE_AFTER, "retries": vendor_retries}
    return {
        "demo": CollectorSpec("demo", (python, "-m", "collectors.demo")),
        "ninja": CollectorSpec("ninja", (python, "-m", "collectors.ninja"), **vendor),  # type: ignore[arg-type]
        "threatlocker": CollectorSpec(
            "threatlocker",
            (python, "-m", "collectors.threatlocker"),
            **vendor,  # type: ignore[arg-type]
        ),
        CROSS_VENDOR_CHECKS: CollectorSpec(
            CROSS_VENDOR_CHECKS,
            (python, "-m", "collectors.cross_vendor_checks"),
            job_name=CROSS_VENDOR_CHECKS,
            job_id_prefix="cv",
            after=("ninja", "threatlocker"),
            run_if="any_succeeded",
        ),
    }


def _parse_entry(name: str, entry: Any, where: str, vendor_retries: int = VENDOR_RETRIES) -> CollectorSpec:
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
    stale_after = _parse_stale_after(entry.get("stale_after"), f"{where}: collectors.{name}.stale_after")
    alert_after = entry.get("alert_after_failures", 1)
    whole = isinstance(alert_after, int) and not isinstance(alert_after, bool)
    if not whole or not 1 <= alert_after <= MAX_ALERT_AFTER_FAILURES:
        raise RegistryError(
            f"{where}: collectors.{name}.alert_after_failures must be a whole number"
            f" from 1 to {MAX_ALERT_AFTER_FAILURES}"
        )
    id_prefix = entry.get("id_prefix", "")
    if not isinstance(id_prefix, str) or (id_prefix and not ID_PREFIX_PATTERN.match(id_prefix)):
        raise RegistryError(f"{where}: collectors.{name}.id_prefix must be two lower-case letters or digits")
    after = _parse_after(name, entry.get("after", []), where)
    run_if = entry.get("run_if", RUN_IF_CONDITIONS[0])
    if run_if not in RUN_IF_CONDITIONS:
        raise RegistryError(f"{where}: collectors.{name}.run_if must be one of {', '.join(RUN_IF_CONDITIONS)}")
    return CollectorSpec(
        name,
        tuple(command),
        dict(env),
        float(timeout),
        job_name,
        stale_after=stale_after,
        alert_after_failures=alert_after,
        job_id_prefix=id_prefix,
        runner_labels=_parse_labels(f"{where}: collectors.{name}.runner_labels", entry.get("runner_labels", {})),
        **_parse_retries(f"{where}: collectors.{name}", entry, vendor_retries if vendor_of(command) else 0),
        after=after,
        run_if=str(run_if),
    )


def _parse_after(name: str, after: Any, where: str) -> tuple[str, ...]:
    if (
        not isinstance(after, list)
        or len(after) > MAX_AFTER
        or not all(isinstance(a, str) and NAME_PATTERN.match(a) for a in after)
        or len(set(after)) != len(after)
        or name in after
    ):
        raise RegistryError(
            f"{where}: collectors.{name}.after must be a list of at most {MAX_AFTER} other collectors' names, each once"
        )
    return tuple(after)


def _parse_retries(what: str, entry: dict[str, Any], default_retries: int) -> dict[str, Any]:
    """The retry keys of an entry, checked, as CollectorSpec fields."""
    retries = entry.get("retries", default_retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise RegistryError(f"{what}.retries must be an integer from 0 to {MAX_RETRIES}")
    found: dict[str, Any] = {"retries": retries}
    for key, lo, hi, rule in (
        ("retry_delay", 0.0, MAX_RETRY_SECONDS, f"seconds from 0 to {MAX_RETRY_SECONDS:g}"),
        ("retry_backoff", 1.0, MAX_RETRY_BACKOFF, f"a number from 1 to {MAX_RETRY_BACKOFF:g}"),
        ("retry_max_delay", 0.0, MAX_RETRY_SECONDS, f"seconds from 0 to {MAX_RETRY_SECONDS:g}"),
    ):
        value = entry.get(key, CollectorSpec.__dataclass_fields__[key].default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise RegistryError(f"{what}.{key} must be {rule}")
        found[key] = float(value)
    jitter = entry.get("retry_jitter", True)
    if not isinstance(jitter, bool):
        raise RegistryError(f"{what}.retry_jitter must be true or false")
    codes = entry.get("no_retry_exit_codes", list(DEFAULT_NO_RETRY_EXIT_CODES))
    if not isinstance(codes, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 255 for c in codes
    ):
        raise RegistryError(f"{what}.no_retry_exit_codes must be a list of exit codes from 1 to 255")
    return {**found, "retry_jitter": jitter, "no_retry_exit_codes": tuple(codes)}


def _parse_labels(what: str, table: Any) -> tuple[str, ...]:
    """A table of labels (``{ site = "hq" }``) as sorted ``KEY=VALUE`` strings."""
    if not isinstance(table, dict) or not all(
        isinstance(value, str) and RUNNER_LABEL.match(f"{key}={value}") for key, value in table.items()
    ):
        raise RegistryError(
            f'{what} must be a table of labels such as {{ site = "hq" }}: keys of lower-case letters, digits,'
            " '_', '.' or '-'; values of letters, digits and _.:/-"
        )
    return tuple(sorted(f"{key}={value}" for key, value in table.items()))


def _parse_stale_after(value: Any, what: str) -> float | None:
    """Seconds, or a string such as ``"26h"``, ``"90m"``, ``"2d"``; absent: never stale."""
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds is None or not 1 <= seconds <= MAX_STALE_AFTER:
        raise RegistryError(f'{what} must be a duration such as "26h", "90m" or "2d" (1 s to 365 d), or seconds')
    return seconds


def _inherited_keys(spec: CollectorSpec) -> dict[str, Any]:
    """What a file entry with a built-in's name keeps from it unless it says otherwise: an
    operator who adds ``env`` to cross-vendor-checks still wants it to run after the vendors."""
    keys: dict[str, Any] = {"after": list(spec.after), "run_if": spec.run_if}
    keys["alert_after_failures"] = spec.alert_after_failures
    if spec.job_name:
        keys["job_name"] = spec.job_name
    if spec.job_id_prefix:
        keys["id_prefix"] = spec.job_id_prefix
    if spec.stale_after is not None:
        keys["stale_after"] = spec.stale_after
    return keys


def _check_order(registry: Mapping[str, CollectorSpec], where: str) -> None:
    """Every collector an ``after`` names exists, and no collector waits for itself through
    others (a cycle would wait forever)."""
    for spec in registry.values():
        unknown = [a for a in spec.after if a not in registry]
        if unknown:
            raise RegistryError(f"{where}: collectors.{spec.name}.after names unknown collectors: {', '.join(unknown)}")
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise RegistryError(f"{where}: collectors wait for each other in a cycle: {cycle}")
        if name in done:
            return
        for other in registry[name].after:
            visit(other, (*path, name))
        done.add(name)

    for name in registry:
        visit(name, ())


def load_registry(path: Path | None = None, *, vendor_retries: int = VENDOR_RETRIES) -> dict[str, CollectorSpec]:
    """Built-in collectors, overlaid with the entries of ``path`` if given. ``vendor_retries``
    is the vendor collectors' default ``retries`` (COLLECTOR_HUB_VENDOR_RETRIES)."""
    registry = builtin_collectors(vendor_retries)
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
        if isinstance(entry, dict) and name in registry:
            entry = {**_inherited_keys(registry[name]), **entry}
        registry[name] = _parse_entry(name, entry, str(path), vendor_retries)
    _check_order(registry, str(path))
    return registry
