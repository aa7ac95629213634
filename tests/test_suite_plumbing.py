"""The suite's own set-up (tests/support/bytecode.py): bytecode caches on before pytest loads
other packages' plugins, so that no pytest process rewrites their modules' assertions again."""

from __future__ import annotations

import os
import sys

import pytest

from tests.support import bytecode


def test_bytecode_caches_are_on_for_the_run_and_the_processes_it_starts() -> None:
    assert sys.dont_write_bytecode is False
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ


def test_caches_are_turned_on_before_any_other_packages_plugin_is_loaded(request: pytest.FixtureRequest) -> None:
    # The plugin manager keeps plugins in the order they were registered.
    plugins = [plugin for _, plugin in request.config.pluginmanager.list_name_plugin()]
    assert bytecode in plugins
    first_foreign = next(
        position
        for position, plugin in enumerate(plugins)
        if (getattr(plugin, "__name__", "") or "").split(".")[0] not in ("_pytest", "pytest", "tests")
        and plugin is not bytecode
        and hasattr(plugin, "__file__")
    )
    assert plugins.index(bytecode) < first_foreign, plugins[: first_foreign + 1]
