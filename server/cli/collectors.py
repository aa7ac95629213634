"""``collector-hub collectors list|check``: what a runner would run, without starting one.

``list`` prints each collector the registry holds (the built-ins, overlaid by the collectors
file): its name, job name, timeout, command and the names of the variables its ``env`` adds
(never their values: they are often credentials). ``check`` reads the file with the rules the
server applies, looks up each command's program the way the runner will start it and checks
that a script its arguments name is there (``python /opt/fetch.py``: an argument ending in
``.py``, ``.sh`` and the like); for a vendor collector it also tests the settings, credentials
and connectivity a run would use (the environment a run gets: this process's, without the
server's own ``COLLECTOR_HUB_*`` variables, then the collector's ``env`` table).

Exit status: 0 all is well; 1 ``check`` found a program that cannot be started, a missing
script or a failed vendor check; 2 the collectors file is invalid (the message names the file, the entry and the
rule) or a name is unknown.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from collectors.contract import ENV_PREFIX
from collectors.registry import CollectorSpec, builtin_collectors, load_registry
from server.settings import load_settings

# The vendor collector modules a command may run (``python -m MODULE``); each has ``load_config``
# and ``check``. Imported only when one is checked: they import asyncio, psycopg2 and their HTTP
# client, which ``list`` and the checks of other collectors do not need.
VENDOR_MODULES = ("collectors.ninja", "collectors.threatlocker")


def _registry(args: argparse.Namespace) -> tuple[dict[str, CollectorSpec], Path | None]:
    settings = load_settings(collectors_file=args.collectors_file)
    return load_registry(settings.collectors_file, vendor_retries=settings.vendor_retries), settings.collectors_file


def run_environment(spec: CollectorSpec) -> dict[str, str]:
    """The environment a run of ``spec`` gets, as far as finding its program goes: this
    process's, without the server's own settings, plus the entry's ``env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(spec.env)
    return env


def vendor_module(spec: CollectorSpec) -> str | None:
    """``collectors.ninja`` for a command ``python -m collectors.ninja``; else None."""
    command = list(spec.command)
    if "-m" in command[:-1]:
        module = command[command.index("-m") + 1]
        return module if module in VENDOR_MODULES else None
    return None


def program_problem(spec: CollectorSpec, env: Mapping[str, str]) -> str | None:
    """Why the runner could not start ``spec``'s program, or None if it can."""
    program = spec.command[0]
    if "/" in program:
        path = Path(program)
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()}, the runner's working directory)"
        if not path.exists():
            return f"{program} does not exist{where}"
        if path.is_dir() or not os.access(path, os.X_OK):
            return f"{program} is not an executable file{where}"
        return None
    if shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        return f"{program!r} is not found on the PATH a run gets ({env.get('PATH', os.defpath)})"
    return None


# An argument with one of these endings names a script the program runs (``python
# /opt/collectors/fetch.py``): check it is there too, or a typo passes the check and fails the run.
SCRIPT_SUFFIXES = frozenset(
    {".py", ".pyw", ".sh", ".bash", ".zsh", ".ksh", ".ps1", ".rb", ".pl", ".php", ".js", ".mjs", ".cjs", ".ts", ".lua"}
)
# Options whose value is code or a module name, never a file (``sh -c "./run.sh"``, ``python -m x``).
# Not ``-e``: code for node and perl, but ``sh -e script.sh`` is a flag before a script.
INLINE_CODE_OPTIONS = frozenset({"-c", "-m", "--eval", "--command", "-Command"})


def script_arguments(command: tuple[str, ...]) -> list[str]:
    """The arguments of ``command`` (after its program) that name a script file."""
    found = []
    for previous, argument in itertools.pairwise(command):
        if previous in INLINE_CODE_OPTIONS or argument.startswith("-") or "://" in argument:
            continue
        if Path(argument).suffix.lower() in SCRIPT_SUFFIXES:
            found.append(argument)
    return found


def script_problem(spec: CollectorSpec) -> str | None:
    """Why a script named in ``spec``'s command is not there, or None."""
    for argument in script_arguments(spec.command):
        path = Path(argument)
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()}, the runner's working directory)"
        if not path.exists():
            return f"the script {argument} does not exist{where}"
        if not path.is_file():
            return f"the script {argument} is not a file{where}"
    return None


def cmd_collectors_list(args: argparse.Namespace) -> int:
    registry, path = _registry(args)
    builtins = builtin_collectors()
    print(f"collectors file: {path or 'none (COLLECTOR_HUB_COLLECTORS_FILE is not set)'}")
    rows = []
    for name, spec in sorted(registry.items()):
        origin = "built-in" if builtins.get(name) == spec else "file"
        env = ", ".join(sorted(spec.env)) or "-"
        rows.append((name, spec.display_name, f"{spec.timeout:g}s", origin, env, shlex.join(spec.command)))
    header = ("NAME", "JOB NAME", "TIMEOUT", "FROM", "ENV", "COMMAND")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def cmd_collectors_check(args: argparse.Namespace) -> int:
    registry, path = _registry(args)  # an invalid file raises RegistryError: exit 2
    names: list[str] = args.names or sorted(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        print(
            f"collector-hub collectors check: error: unknown collector(s): {', '.join(unknown)}."
            f" Known collectors: {', '.join(sorted(registry))}",
            file=sys.stderr,
        )
        return 2
    print(f"collectors file: {path or 'none (COLLECTOR_HUB_COLLECTORS_FILE is not set)'}: valid")
    failed = 0
    for name in names:
        ok, text = check_one(registry[name])
        if ok:
            print(f"{name}: OK: {text}")
        else:
            failed += 1
            print(f"{name}: FAILED: {text}", file=sys.stderr)
    return 1 if failed else 0


def check_one(spec: CollectorSpec) -> tuple[bool, str]:
    """Whether a run of ``spec`` could start, and for a vendor collector whether its settings
    and credentials work; with what was found or why not."""
    env = run_environment(spec)
    problem = program_problem(spec, env) or script_problem(spec)
    if problem is not None:
        return False, f"{problem}; a run would fail at once"
    module = vendor_module(spec)
    if module is None:
        return True, f"{shlex.join(spec.command)} (not a vendor collector: nothing more to check)"
    vendor = importlib.import_module(module)
    run_module = importlib.import_module("collectors.inventory_run")  # as VENDOR_MODULES: it imports asyncio
    result: tuple[bool, str] = run_module.check_collector(vendor.load_config, vendor.check, env)
    return result


def run(args: argparse.Namespace) -> int:
    if args.collectors_command == "list":
        return cmd_collectors_list(args)
    return cmd_collectors_check(args)
