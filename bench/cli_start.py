"""What one start of a ``collector-hub`` command, a collector or the server costs in CPU, for
this checkout and, with --compare, another one (an older commit's worktree), alternating
between the two so the machine's load weighs on both alike. Each figure is the CPU (user +
system) of the child process, from getrusage(RUSAGE_CHILDREN) around the run; no command
needs a database or a server (the refusals and imports are what is measured):

    python bench/cli_start.py --repeat 5 --compare /path/to/an/older/worktree

Figures of 2026-12-06 (load 9-17, 5 runs each, against main at 762fc09): the commands that send
a request and print the answer no longer import aiohttp (server/cli/client.py): ``schedules
list``, ``run --no-wait`` and ``logs`` with no server 219, 219 and 214 ms, against 514, 509 and
514 before; ``watch``, which follows a stream and still imports it, 516 against 508.

Figures of 2026-12-06 (load 7.9, 5 runs each, against main at cec7d7a): the commands that follow
a live stream read it with the standard library too (watch.py, log_stream.py): ``watch``, ``run``
(waiting) and ``logs --follow`` with no server 181, 189 and 189 ms, against 339, 338 and 341.
Then (load 5.3, against main at 8560c29) main.py without the settings: ``--help`` 64 against 135,
``progress`` 104 against 178, the commands that talk to the server 123-134 against 167-175.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on the discard port


def commands(scratch: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    bad_pem = scratch / "bad.pem"
    bad_pem.write_text("not a certificate\n")
    server = ["-m", "server"]
    return {
        "--help": ([*server, "--help"], {}),
        "usage error": ([*server, "schedules"], {}),
        "progress, bad percent": ([*server, "progress", "ni_00000000", "running", "50.0"], {}),
        "collectors list": ([*server, "collectors", "list"], {}),
        "schedules list, no server": ([*server, "schedules", "list", "--url", UNREACHABLE], {}),
        "run --no-wait, no server": ([*server, "run", "demo", "--no-wait", "--url", UNREACHABLE], {}),
        "logs, no server": ([*server, "logs", "de_12345678", "--url", UNREACHABLE], {}),
        "watch, no server": ([*server, "watch", "bc_12345678", "--url", UNREACHABLE, "--timeout", "0.01"], {}),
        "run (waits), no server": ([*server, "run", "demo", "--url", UNREACHABLE], {}),
        "logs --follow, no server": ([*server, "logs", "de_12345678", "--follow", "--url", UNREACHABLE], {}),
        "import server.cli.migrate": (["-c", "import server.cli.migrate"], {}),
        "import server.cli.keys": (["-c", "import server.cli.keys"], {}),
        "import collectors.demo": (["-c", "import collectors.demo"], {}),
        "import collectors.ninja": (["-c", "import collectors.ninja"], {}),
        "serve, bad setting": ([*server, "serve"], {"COLLECTOR_HUB_PORT": "http"}),
        "serve, bad TLS file": (
            [*server, "serve", "--port", "47919", "--tls-cert", str(bad_pem), "--tls-key", str(bad_pem)],
            {"COLLECTOR_HUB_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"},
        ),
        "import server.app": (["-c", "import server.app"], {}),
    }


def cpu_of(root: Path, args: list[str], env: dict[str, str]) -> float:
    """CPU seconds of one run of ``python ARGS`` in ``root`` (its code first on the path)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, *args], cwd=root, capture_output=True, env={**clean, "PYTHONPATH": str(root), **env}
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if b"Traceback" in result.stderr:
        raise SystemExit(f"{root}: python {' '.join(args)} failed:\n{result.stderr.decode()[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command in each checkout")
    parser.add_argument("--compare", type=Path, help="another checkout, measured alternately with this one")
    args = parser.parse_args()
    roots = [ROOT] + ([args.compare.resolve()] if args.compare else [])
    with tempfile.TemporaryDirectory() as scratch:
        table = commands(Path(scratch))
        totals = {(root, name): 0.0 for root in roots for name in table}
        for _ in range(args.repeat):
            for name, (command, env) in table.items():
                for root in roots:
                    totals[root, name] += cpu_of(root, command, env)
    print(f"load average {os.getloadavg()[0]:.1f}; CPU ms per start, mean of {args.repeat}")
    print(f"{'command':28s}" + "".join(f"{str(root)[-24:]:>26s}" for root in roots))
    for name in table:
        print(f"{name:28s}" + "".join(f"{totals[root, name] / args.repeat * 1000:26.0f}" for root in roots))


if __name__ == "__main__":
    main()
