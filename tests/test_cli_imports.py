"""The quick sub-commands start without the HTTP stack: ``collector-hub --help``, a usage error,
``progress`` (run by shell collectors for every page), ``migrate``, ``keys``, ``collectors list`` and the
logging set-up every server-side command shares import neither aiohttp nor the server
(docs/ARCHITECTURE.md, ``server/cli/``). Importing aiohttp alone costs a CLI process several
times what the rest of such a command does. Nor do the commands that send a request and print
the answer (``schedules``, ``audit``, ``run --no-wait``, ``rerun``, ``logs``), nor those that
follow a live stream (``watch``, ``run`` while it waits, ``rerun --watch``, ``logs --follow``),
which read it line by line with the standard library."""

from __future__ import annotations

import os
import subprocess
import sys

QUICK_COMMANDS = ("main", "console", "progress", "migrate", "collectors", "keys")
HEAVY = ("aiohttp", "server.app")


def test_quick_commands_import_neither_aiohttp_nor_the_server() -> None:
    code = (
        "import sys\n"
        f"from server.cli import {', '.join(QUICK_COMMANDS)}\n"
        f"print(' '.join(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_serve_imports_the_server_once_it_serves_and_openpyxl_and_redis_only_when_used() -> None:
    """A refused ``serve`` (a bad setting, a taken port) stops before the server is imported;
    the server, once imported, leaves openpyxl until an XLSX export asks for it, and the Redis
    client until a Redis URL is set."""
    code = (
        "import sys\n"
        "import server.cli.serve\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
        "import server.app\n"
        "print(sorted(name for name in ('openpyxl', 'redis') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]"]


UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on the discard port
REQUEST_COMMANDS = (
    ["schedules", "list"],
    ["schedules", "add", "nightly", "--cron", "@daily", "--collectors", "demo"],
    ["schedules", "pause", "nightly"],
    ["audit", "--action", "schedule."],
    ["run", "demo", "--no-wait"],
    ["rerun", "bc_12345678"],
    ["logs", "de_12345678"],
)


def test_commands_that_send_a_request_and_print_the_answer_import_neither_aiohttp_nor_asyncio() -> None:
    """Each command really sends its request (to a port where nothing listens, so each ends with
    "cannot connect" and exit status 2) in one process, which then must hold neither aiohttp nor
    asyncio: the request path is the standard library's (server/cli/client.py)."""
    code = (
        "import sys\n"
        "from server.cli.main import main\n"
        f"print([main([*argv, '--url', {UNREACHABLE!r}]) for argv in {REQUEST_COMMANDS!r}])\n"
        "print(' '.join(name for name in ('aiohttp', 'asyncio', 'server.app') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    statuses, heavy = result.stdout.splitlines()
    assert statuses == str([2] * len(REQUEST_COMMANDS)), result.stderr
    assert result.stderr.count("cannot connect to 127.0.0.1:9: connection refused") == len(REQUEST_COMMANDS)
    assert heavy == ""


FOLLOWING_COMMANDS = (
    ["watch", "bc_12345678", "--timeout", "0.3"],
    ["run", "demo", "--timeout", "0.3"],
    ["rerun", "bc_12345678", "--watch"],
    ["logs", "de_12345678", "--follow"],
)


def test_commands_that_follow_a_live_stream_import_neither_aiohttp_nor_asyncio() -> None:
    """``watch`` really follows (it keeps reconnecting until its --timeout: exit status 1); the
    others fail to start (exit status 2) once their follower's module is imported: in one
    process, which then must hold neither aiohttp nor asyncio (watch.py, log_stream.py)."""
    code = (
        "import sys\n"
        "from server.cli.main import main\n"
        f"print([main([*argv, '--url', {UNREACHABLE!r}]) for argv in {FOLLOWING_COMMANDS!r}])\n"
        "print(' '.join(name for name in ('server.cli.watch', 'server.cli.log_stream') if name in sys.modules))\n"
        "print(' '.join(name for name in ('aiohttp', 'asyncio', 'server.app') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    gave_up, statuses, followers, heavy = result.stdout.splitlines()
    assert gave_up == "Gave up waiting after 0.3s; batch bc_12345678 goes on in the server"
    assert statuses == str([1, 2, 2, 2]), result.stderr
    assert "collector-hub watch: cannot connect to 127.0.0.1:9: connection refused; reconnecting" in result.stderr
    assert followers == "server.cli.watch server.cli.log_stream"
    assert heavy == ""


def test_help_progress_and_the_commands_that_only_talk_to_the_server_leave_the_settings_unread() -> None:
    """The settings module (every ``COLLECTOR_HUB_*`` setting, the collectors file's rules, the
    webhook receivers' rules) is a third of what ``--help`` or ``run`` cost to start; only the
    commands that read settings import it (server/cli/main.py). ``progress`` really reports
    (to a database that is not there: exit status 1, said in one line)."""
    commands = [["--help"], ["progress", "ni_00000000", "running", "50"], *REQUEST_COMMANDS, *FOLLOWING_COMMANDS]
    code = (
        "import sys\n"
        "from server.cli.main import main\n"
        "statuses = []\n"
        f"for argv in {commands!r}:\n"
        "    url = [] if argv[0] in ('--help', 'progress') else ['--url', 'http://127.0.0.1:9']\n"
        "    try:\n"
        "        statuses.append(main([*argv, *url]))\n"
        "    except SystemExit as exc:\n"
        "        statuses.append(exc.code)\n"
        "print(statuses)\n"
        "print(' '.join(name for name in ('server.settings', 'collectors.registry') if name in sys.modules))\n"
    )
    env = {
        **os.environ,
        "COLLECTOR_HUB_JOB_ID": "ni_00000000",
        "COLLECTOR_HUB_DATABASE_URL": "postgresql://x@127.0.0.1:9/x",
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    statuses, settings_modules = result.stdout.splitlines()[-2:]
    assert statuses == str([0, 1] + [2] * len(REQUEST_COMMANDS) + [1, 2, 2, 2]), result.stderr
    assert "collector-hub progress: error: cannot reach the database: " in result.stderr
    assert settings_modules == ""
