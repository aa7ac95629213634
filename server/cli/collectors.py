"""``collector-hub collectors check [NAME ...]``: test a vendor collector's settings,
credentials and connectivity without starting a run, and print what it found or why not.

The check sees the environment a run would get: this process's environment without the
server's own ``COLLECTOR_HUB_*`` variables, then the collector's ``env`` table from the
collectors file. Exit status: 0 every check passed, 1 one failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from collectors import ninja, threatlocker
from collectors.contract import ENV_PREFIX
from collectors.inventory_run import check_collector
from collectors.registry import CollectorSpec, load_registry
from server.settings import load_settings

# The collector module a command runs (``python -m MODULE``) -> how to check it.
VENDOR_CHECKS: dict[str, tuple[Callable[[Mapping[str, str]], Any], Callable[..., Any]]] = {
    "collectors.ninja": (ninja.load_config, ninja.check),
    "collectors.threatlocker": (threatlocker.load_config, threatlocker.check),
}


def vendor_module(spec: CollectorSpec) -> str | None:
    """``collectors.ninja`` for a command ``python -m collectors.ninja``; else None."""
    command = list(spec.command)
    if "-m" in command[:-1]:
        module = command[command.index("-m") + 1]
        return module if module in VENDOR_CHECKS else None
    return None


def check_environment(spec: CollectorSpec) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(spec.env)
    return env


def run(args: argparse.Namespace) -> int:
    """``collectors check`` (the only sub-command)."""
    settings = load_settings(collectors_file=args.collectors_file)
    registry = load_registry(settings.collectors_file)
    names: list[str] = args.names or [n for n, s in sorted(registry.items()) if vendor_module(s)]
    unknown = [n for n in names if n not in registry]
    if unknown:
        print(
            f"collector-hub collectors check: error: unknown collector(s): {', '.join(unknown)}."
            f" Known collectors: {', '.join(sorted(registry))}",
            file=sys.stderr,
        )
        return 2
    failed = 0
    for name in names:
        module = vendor_module(registry[name])
        if module is None:
            print(f"{name}: nothing to check (not a vendor collector; its command is run as it is)")
            continue
        load_config, check = VENDOR_CHECKS[module]
        ok, text = check_collector(load_config, check, check_environment(registry[name]))
        if ok:
            print(f"{name}: OK: {text}")
        else:
            failed += 1
            print(f"{name}: FAILED: {text}", file=sys.stderr)
    return 1 if failed else 0
