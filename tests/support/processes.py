"""Real processes for tests: a Redis server and ``collector-hub serve``, on free loopback ports.

Redis: ``COLLECTOR_HUB_REDIS_URL`` when set (a server the tests may write to), else a
``redis-server`` binary (Debian's ``redis-server`` package; ``.ci/run`` installs it) started
here with no persistence. Without either, Redis tests are skipped, except under CI, where
they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest

from tests.support.conditions import eventually


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it, so parallel workers differ)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# A process a test starts gets SIGTERM when the test process dies, even by SIGKILL: Linux's
# PR_SET_PDEATHSIG, set by a small launcher that then execs the command (the setting survives
# exec). A killed pytest worker left its `serve` processes running for half an hour on a shared
# machine. The launcher checks its parent is still the test process: one that died before the
# setting was made would never send the signal.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"  # 1: PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def ended_with_this_process(command: Sequence[str]) -> list[str]:
    """``command``, run so that it is sent SIGTERM when this process dies (Linux; as is elsewhere).
    Start it from the thread that lives as long as the process (the event loop's): the signal
    comes when the thread that started it ends."""
    if sys.platform != "linux":
        return list(command)
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def collector_hub_command() -> list[str]:
    """The installed ``collector-hub`` script, as a user runs it (``python -m server`` without one)."""
    script = Path(sys.executable).parent / "collector-hub"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server"]


def clean_environment(**extra: str) -> dict[str, str]:
    """This environment without any COLLECTOR_HUB_ setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_HUB_")}
    env.update(extra)
    return env


def process_alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pids(path: Path) -> list[int]:
    """The process ids a test collector wrote to ``path`` (one per start), none if it never ran."""
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def redis_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()), None
    )


def require_redis_binary() -> str:
    found = redis_binary()
    if found is None:
        message = "redis-server is not installed (apt-get install redis-server) and COLLECTOR_HUB_REDIS_URL is unset"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class RedisServer:
    """A throwaway redis-server on a fixed loopback port, which tests can stop and restart."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_redis_binary()
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ended_with_this_process(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir), "--protected-mode", "yes"]
            ),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            time.sleep(0.05)  # startup poll of a child process, not a test condition
        raise RuntimeError("redis-server did not answer PING within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class ServeProcess:
    """``collector-hub serve`` as a subprocess; stderr goes to a file the test can read."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "COLLECTOR_HUB_PORT": str(self.port)}
        self.args = args
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self, ssl: object = None) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                *ended_with_this_process([sys.executable, "-m", "server", "serve", *self.args]),
                env=self.env, stdout=log_file, stderr=log_file, start_new_session=True,
            )  # fmt: skip

        async def healthy() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.get(self.url + "/healthz", ssl=ssl) as resp:  # type: ignore[arg-type]
                        return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(healthy, timeout=60, what=f"serve on port {self.port} to answer")

    async def stop(self, sig: int = signal.SIGTERM, within: float = 30) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                async with asyncio.timeout(within):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(f"serve did not stop within {within}s of signal {sig}:\n{self.log()}") from None
        assert self.process.returncode is not None
        return self.process.returncode


@contextlib.asynccontextmanager
async def serving(env: dict[str, str], log_path: Path, *args: str) -> AsyncIterator[ServeProcess]:
    server = ServeProcess(env, log_path, *args)
    try:
        await server.start()
        yield server
    finally:
        if server.process is not None and server.process.returncode is None:
            await server.stop()
