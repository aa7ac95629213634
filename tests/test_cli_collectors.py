"""``collector-hub collectors list|check``: what is configured, and whether the collectors
file would work, without starting a server or a runner."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli.main import build_parser, main


def collectors_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "server", "collectors", *args],
        env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def collectors_file(tmp_path: Path) -> Path:
    script = tmp_path / "disk-usage.sh"
    script.write_text("#!/bin/sh\necho '@progress 100 done'\n")
    script.chmod(0o755)
    path = tmp_path / "collectors.toml"
    path.write_text(
        f'[collectors.disk-usage]\ncommand = ["{script}"]\nenv = {{ VENDOR_TOKEN = "s3cr3t-value" }}\n'
        'timeout = 600\n\n[collectors.users]\ncommand = ["sh", "-c", "true"]\njob_name = "local-accounts"\n'
    )
    return path


def test_list_shows_built_ins_and_the_file_without_env_values(collectors_file: Path, tmp_path: Path) -> None:
    result = collectors_cli("list", cwd=tmp_path, COLLECTOR_HUB_COLLECTORS_FILE=str(collectors_file))
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert set(lines) == {"cross-vendor-checks", "demo", "ninja", "threatlocker", "disk-usage", "users"}
    assert "600s" in lines["disk-usage"] and "file" in lines["disk-usage"] and "VENDOR_TOKEN" in lines["disk-usage"]
    assert "local-accounts" in lines["users"] and "sh -c true" in lines["users"]
    assert "built-in" in lines["demo"]
    assert "s3cr3t-value" not in result.stdout + result.stderr


def test_check_passes_a_valid_file_whose_programs_exist(collectors_file: Path, tmp_path: Path) -> None:
    result = collectors_cli("check", "disk-usage", "users", "--collectors-file", str(collectors_file), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout.splitlines()[0]
    assert "disk-usage: OK" in result.stdout and "users: OK: sh -c true" in result.stdout
    assert "nothing more to check" in result.stdout


def test_check_exits_1_naming_a_program_that_cannot_start(tmp_path: Path) -> None:
    path = tmp_path / "collectors.toml"
    path.write_text(
        '[collectors.gone]\ncommand = ["/nonexistent/collector.sh"]\n\n'
        '[collectors.typo]\ncommand = ["pyhton3", "x.py"]\n\n'
        f'[collectors.noexec]\ncommand = ["{path}"]\n'
    )
    result = collectors_cli("check", "--collectors-file", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "gone: FAILED: /nonexistent/collector.sh does not exist" in result.stderr
    assert "typo: FAILED: 'pyhton3' is not found on the PATH" in result.stderr
    assert "noexec: FAILED:" in result.stderr and "not an executable file" in result.stderr
    assert "demo: OK" in result.stdout


def test_check_exits_1_naming_a_script_argument_that_does_not_exist(tmp_path: Path) -> None:
    """`typo: OK: .../python /path/fial.py` used to pass: only the program was looked up."""
    script = tmp_path / "fetch.py"
    script.write_text("print('ok')\n")
    path = tmp_path / "collectors.toml"
    path.write_text(
        f'[collectors.typo]\ncommand = ["{sys.executable}", "{tmp_path / "fial.py"}"]\n\n'
        '[collectors.relative]\ncommand = ["sh", "-e", "scripts/collect.sh", "--verbose"]\n\n'
        '[collectors.folder]\ncommand = ["sh", "lib.sh"]\n\n'
        f'[collectors.fine]\ncommand = ["{sys.executable}", "-u", "{script}", "--since", "https://x.example/a.js"]\n\n'
        '[collectors.inline]\ncommand = ["sh", "-c", "exec ./missing.sh"]\n\n'
        f'[collectors.module]\ncommand = ["{sys.executable}", "-m", "collectors.demo"]\n'
    )
    (tmp_path / "lib.sh").mkdir()
    result = collectors_cli(
        "check", "typo", "relative", "fine", "inline", "module", "--collectors-file", str(path), cwd=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"typo: FAILED: the script {tmp_path / 'fial.py'} does not exist; a run would fail at once" in result.stderr
    assert (
        f"relative: FAILED: the script scripts/collect.sh does not exist (relative to {tmp_path},"
        " the runner's working directory); a run would fail at once"
    ) in result.stderr
    assert {line.split(":")[0] for line in result.stdout.splitlines()[1:]} == {"fine", "inline", "module"}
    folder = collectors_cli("check", "folder", "--collectors-file", str(path), cwd=tmp_path)
    assert folder.returncode == 1 and "folder: FAILED: the script lib.sh is not a file" in folder.stderr


@pytest.mark.parametrize(
    "content, complaint",
    [
        ('[collectors.x1]\ncommand = ["true"]\ntimout = 5\n', "unknown keys: timout"),
        ('[collectors.Bad]\ncommand = ["true"]\n', "collector name 'Bad' must match"),
        ("[collectors.ok]\ncommand = []\n", "command must be a non-empty list of strings"),
        ("[collectors.ok\n", "not valid TOML"),
        ('[collector.ok]\ncommand = ["true"]\n', "unknown top-level keys: collector"),
    ],
)
def test_check_exits_2_on_an_invalid_file_naming_the_rule(tmp_path: Path, content: str, complaint: str) -> None:
    path = tmp_path / "collectors.toml"
    path.write_text(content)
    result = collectors_cli("check", "--collectors-file", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert complaint in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_check_of_a_missing_file_or_unknown_name_exits_2(collectors_file: Path, tmp_path: Path) -> None:
    missing = collectors_cli("check", "--collectors-file", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope.toml" in missing.stderr
    unknown = collectors_cli("check", "nosuch", "--collectors-file", str(collectors_file), cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown collector(s): nosuch" in unknown.stderr


def every_command_line() -> list[list[str]]:
    """Each command and sub-command of the CLI, as argv prefixes."""
    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        found.append(prefix)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, [*prefix, name])

    walk(build_parser(), [])
    return found


@pytest.mark.parametrize("argv", every_command_line(), ids=lambda a: " ".join(a) or "collector-hub")
def test_help_is_plain_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """No reStructuredText or Markdown markup (``x``) leaks from docstrings into --help."""
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "usage: collector-hub" in out
    assert "``" not in out, out
