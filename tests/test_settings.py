"""Settings are validated at start with a message naming the variable and the bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import Settings, SettingsError, load_settings


def test_defaults():
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 5400)
    assert settings.database_url is None and settings.uses_embedded_database


def test_environment_then_flags():
    settings = load_settings({"COLLECTOR_HUB_PORT": "6000", "COLLECTOR_HUB_HOST": "0.0.0.0"}, port=7000)
    assert (settings.host, settings.port) == ("0.0.0.0", 7000)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COLLECTOR_HUB_PORT": "abc"}, "COLLECTOR_HUB_PORT must be an integer, got 'abc'"),
        ({"COLLECTOR_HUB_PORT": "70000"}, "COLLECTOR_HUB_PORT must be between 1 and 65535, got 70000"),
        ({"COLLECTOR_HUB_RUN_COLLECTORS": "maybe"}, "COLLECTOR_HUB_RUN_COLLECTORS must be one of"),
        ({"COLLECTOR_HUB_DATABASE_URL": "mysql://x"}, "COLLECTOR_HUB_DATABASE_URL must be a PostgreSQL URL"),
        ({"COLLECTOR_HUB_LOG_LEVEL": "LOUD"}, "COLLECTOR_HUB_LOG_LEVEL must be DEBUG, INFO"),
        ({"COLLECTOR_HUB_WATCHDOG_TIMEOUT": "0"}, "COLLECTOR_HUB_WATCHDOG_TIMEOUT must be between"),
        ({"COLLECTOR_HUB_COLLECTORS_FILE": "/nonexistent.toml"}, "must name an existing file"),
        ({"COLLECTOR_HUB_DB_POOL_MIN": "5", "COLLECTOR_HUB_DB_POOL_MAX": "2"}, "must not exceed"),
    ],
)
def test_bad_values_are_named(env, message):
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert message in str(caught.value)


def test_settings_are_immutable():
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def test_serve_refuses_bad_settings_with_a_clear_message(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "collector-hub: error: --port must be between 1 and 65535, got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_documents_every_setting():
    from pathlib import Path

    from server.settings import _PARSERS, env_name

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [env_name(field) for field in _PARSERS if env_name(field) not in readme]
    assert missing == [], "add these settings to README.md's table"


def test_deployment_guide_lists_every_setting():
    from pathlib import Path

    from server.settings import _PARSERS, env_name

    guide = (Path(__file__).resolve().parent.parent / "docs" / "DEPLOYMENT.md").read_text()
    missing = [env_name(field) for field in _PARSERS if env_name(field) not in guide]
    assert missing == [], "add these settings to the table at the end of docs/DEPLOYMENT.md"
