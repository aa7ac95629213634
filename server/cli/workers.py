"""``collector-hub serve --workers N``: N server processes on one port.

The master binds the listening socket once, then forks N workers that all accept on it (the
kernel hands each connection to one of them). Every worker is a whole server: its own pool,
its own LISTEN connection and hub (so every worker delivers every event to its own clients),
its own runner. The master holds no event loop and no database connection; it owns the
embedded PostgreSQL when no URL is set (started once, migrated once, stopped last), forwards
SIGTERM/SIGINT to the workers, restarts a worker that dies on its own, and exits with the
first non-zero worker status (0 if all stopped cleanly).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

from server.settings import Settings

log = logging.getLogger("collector_hub")

RESTART_DELAY = 1.0


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def worker_settings(settings: Settings, index: int, default_runner_id: bool) -> Settings:
    """Each worker's runner needs its own id: settling a dead runner's jobs is by id."""
    runner_id = f"{socket.gethostname()}:{os.getpid()}" if default_runner_id else f"{settings.runner_id}-{index}"
    return dataclasses.replace(settings, runner_id=runner_id, workers=1)


def run_workers(
    settings: Settings, serve_one: Callable[[Settings, socket.socket], int], sock: socket.socket | None = None
) -> int:
    """Fork ``settings.workers`` workers running ``serve_one(worker_settings, sock)``; supervise.
    ``sock``: the listening socket, if the caller bound it already."""
    default_runner_id = settings.runner_id == f"{socket.gethostname()}:{os.getpid()}"
    sock = sock or bind_socket(settings.host, settings.port)
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False
    status = 0

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = serve_one(worker_settings(settings, index, default_runner_id), sock)
            finally:
                os._exit(code)
        children[pid] = index

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index in range(settings.workers):
        start(index)
    log.info("%s workers serving on %s:%s", settings.workers, settings.host, settings.port)
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        index = children.pop(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if stopping:
            if code != 0 and status == 0:
                status = code if code > 0 else 1
            continue
        log.warning("worker %s (pid %s) exited with %s; starting another", index, pid, code)
        time.sleep(RESTART_DELAY)
        if not stopping:
            start(index)
    sock.close()
    return status
