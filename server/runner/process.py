"""One collector run as an OS process: start it, read its output, stop it, say how it ended.

Each process starts in its own session (so its own process group, whose id is its pid): the
whole tree it spawns is signalled together. Stopping is SIGTERM to the group, then SIGKILL
after the grace period. When the main process exits, whatever it left in its group is killed
too, so a collector never outlives its job (a program that wants a daemon must detach it into
a session of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from collectors.contract import DATABASE_URL_ENV, ENV_PREFIX, JOB_ID_ENV
from collectors.registry import CollectorSpec
from server.runner.protocol import CappedLineSplitter, StdoutProgress, parse_progress_line, printable

log = logging.getLogger(__name__)

STDERR_KEEP_BYTES = 16 * 1024
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 2000
READ_CHUNK = 64 * 1024
# After the process exits, how long to wait for the rest of its output (a grandchild that
# escaped into its own session could hold the pipes open forever).
DRAIN_SECONDS = 2.0


class StopReason(enum.Enum):
    JOB_ENDED = "the job ended elsewhere (cancelled, failed by the watchdog, or deleted)"
    TIMEOUT = "the collector's timeout passed"
    SHUTDOWN = "the runner is stopping"


@dataclasses.dataclass(frozen=True)
class ProcessResult:
    returncode: int | None  # None: it never started
    stopped_for: StopReason | None  # set only when the runner signalled the process
    stderr_tail: str
    start_error: str | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str
    message: str
    error: str | None
    exit_code: int | None


def collector_environment(spec: CollectorSpec, job_id: str, database_url: str) -> dict[str, str]:
    """The runner's environment without its own ``COLLECTOR_HUB_*`` settings (they may hold
    secrets a collector has no use for), then the spec's variables, then the job's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.setdefault("PYTHONUNBUFFERED", "1")  # stdout progress lines should arrive as printed
    env.update(spec.env)
    env[JOB_ID_ENV] = job_id
    env[DATABASE_URL_ENV] = database_url
    return env


def signal_group(pgid: int, signum: signal.Signals) -> None:
    """Signal a whole process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def process_exists(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux), or it just went: trust kill()
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def kill_orphaned_collector(pid: int, job_id: str) -> bool:
    """Kill the process group of a collector a dead runner left behind, but only if ``pid``
    still is that collector (its environment names the job), never a process that reused the
    pid. Linux only (reads /proc); elsewhere the watchdog and timeout remain."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    if f"{JOB_ID_ENV}={job_id}".encode() not in environ.split(b"\0"):
        return False
    signal_group(pid, signal.SIGKILL)
    return True


def stderr_tail(raw: bytes) -> str:
    """The last lines of stderr, bounded, as text a database and a dashboard accept."""
    text = raw.decode("utf-8", errors="replace")
    lines = [printable(line).rstrip() for line in text.splitlines()]
    tail = "\n".join([line for line in lines if line.strip()][-STDERR_TAIL_LINES:])
    if len(tail) > STDERR_TAIL_CHARS:
        tail = "…" + tail[-(STDERR_TAIL_CHARS - 1) :]
    return tail


class CollectorProcess:
    """Runs one collector command to its end; :meth:`request_stop` ends it early."""

    def __init__(
        self,
        spec: CollectorSpec,
        env: Mapping[str, str],
        grace_period: float,
        on_progress: Callable[[StdoutProgress], None],
        on_line: Callable[[str, str, bool, int], None] | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        """``on_line(stream, text, is_progress, cut_bytes)`` gets every output line (the job
        log); ``redact`` cleans the stderr tail that goes into a failed job's error."""
        self.spec = spec
        self._env = dict(env)
        self._grace = grace_period
        self._on_progress = on_progress
        self._on_line = on_line
        self._redact = redact
        self._stop_requested = asyncio.Event()
        self._stop_reason: StopReason | None = None
        self._stderr = bytearray()

    def request_stop(self, reason: StopReason) -> None:
        """Stop the process (SIGTERM, then SIGKILL after the grace period); the first reason
        given wins."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop_requested.set()

    async def run(self, on_started: Callable[[int], Awaitable[None]]) -> ProcessResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.spec.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
                start_new_session=True,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return ProcessResult(None, None, "", f"cannot start {self.spec.command[0]!r}: {reason}")
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            asyncio.create_task(self._read_stdout(proc.stdout)),
            asyncio.create_task(self._read_stderr(proc.stderr)),
        ]
        stopped_for: StopReason | None = None
        try:
            try:
                await on_started(proc.pid)
            except Exception:  # the run goes on; the pid is only for operators and settling
                log.exception("could not record the pid of %s", self.spec.name)
            stopped_for = await self._wait_or_stop(proc)
        finally:
            # Whatever happened, even our own cancellation: no process stays behind.
            signal_group(proc.pid, signal.SIGKILL)
            if proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 5)
            await self._drain(readers)
        return ProcessResult(proc.returncode, stopped_for, self._redact(stderr_tail(bytes(self._stderr))))

    async def _wait_or_stop(self, proc: asyncio.subprocess.Process) -> StopReason | None:
        exited = asyncio.create_task(proc.wait())
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            done, _ = await asyncio.wait({exited, stop}, timeout=self.spec.timeout, return_when=asyncio.FIRST_COMPLETED)
            if exited in done:
                return None
            if not done:
                self.request_stop(StopReason.TIMEOUT)
            assert self._stop_reason is not None
            log.info("stopping collector %s (pid %s): %s", self.spec.name, proc.pid, self._stop_reason.value)
            if self._grace > 0:
                signal_group(proc.pid, signal.SIGTERM)
                await asyncio.wait({exited}, timeout=self._grace)
            if not exited.done():
                signal_group(proc.pid, signal.SIGKILL)
                await exited
            return self._stop_reason
        finally:
            for task in (exited, stop):
                task.cancel()
            await asyncio.gather(exited, stop, return_exceptions=True)

    async def _drain(self, readers: list[asyncio.Task[None]]) -> None:
        _, pending = await asyncio.wait(readers, timeout=DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        splitter = CappedLineSplitter()
        while chunk := await stream.read(READ_CHUNK):
            self._handle_stdout(splitter.feed(chunk))
        self._handle_stdout(splitter.finish())

    def _handle_stdout(self, lines: list[tuple[str, int]]) -> None:
        for line, cut in lines:
            # A line too long to keep whole is never a report (protocol.py).
            report = parse_progress_line(line) if not cut else None
            if report is not None:
                self._on_progress(report)
            if self._on_line is not None:
                self._on_line("stdout", line, report is not None, cut)

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        splitter = CappedLineSplitter()
        while chunk := await stream.read(READ_CHUNK):
            self._stderr += chunk
            del self._stderr[:-STDERR_KEEP_BYTES]
            self._handle_stderr(splitter.feed(chunk))
        self._handle_stderr(splitter.finish())

    def _handle_stderr(self, lines: list[tuple[str, int]]) -> None:
        if self._on_line is not None:
            for line, cut in lines:
                self._on_line("stderr", line, False, cut)


def describe_outcome(result: ProcessResult, timeout: float) -> Outcome | None:
    """What the end of the process means for its job; None when there is nothing to record
    (the job ended elsewhere) or the job goes back to the queue (runner shutdown: the caller
    decides)."""
    tail = result.stderr_tail
    detail = f"\nLast lines of stderr:\n{tail}" if tail else ""
    code = result.returncode
    if result.start_error is not None:
        error = f"Could not start the collector: {result.start_error}"
        return Outcome("failed", "Collector could not start", error, None)
    if result.stopped_for in (StopReason.JOB_ENDED, StopReason.SHUTDOWN):
        return None
    if result.stopped_for is StopReason.TIMEOUT:
        error = f"Timed out after {timeout:g} seconds (the collector's timeout); the process was stopped{detail}"
        return Outcome("failed", "Timed out", error, code)
    if code is None:  # not even SIGKILL ended it in time (e.g. stuck in the kernel)
        return Outcome("failed", "Collector did not exit", f"The process did not exit after SIGKILL{detail}", None)
    if code == 0:
        return Outcome("completed", "Completed successfully", None, 0)
    if code < 0:
        name = _signal_name(-code)
        return Outcome("failed", f"Collector killed by {name}", f"Killed by signal {name} ({-code}){detail}", code)
    return Outcome("failed", f"Collector exited with code {code}", f"Exited with code {code}{detail}", code)


def describe_end(result: ProcessResult, seconds: float) -> str:
    """The runner's last note in the job's log: how the process ended (exit code or signal,
    and why the runner stopped it if it did) and how long it ran."""
    if result.start_error is not None:
        return f"Could not start the collector: {result.start_error}"
    code = result.returncode
    if code is None:
        ended = "Collector did not exit after SIGKILL"
    elif code < 0:
        ended = f"Collector killed by {_signal_name(-code)}"
    else:
        ended = f"Collector exited with code {code}"
    ended += f" after {seconds:.1f} s"
    if result.stopped_for is not None:
        return f"Stopped because {result.stopped_for.value}: {ended[:1].lower()}{ended[1:]}"
    return ended


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
