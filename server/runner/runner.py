"""The runner: claims queued jobs and runs each collector in its own OS process.

One loop, every ``runner_poll_interval`` (sooner when a slot frees up, a job is queued, or one of
its jobs is cancelled or failed elsewhere: the last two by NOTIFY, in a server):

1. stop the processes of this runner's jobs that ended elsewhere (cancelled by a user,
   failed by a watchdog, deleted): one query for all of them;
2. the watchdog, over every runner's jobs: fail running jobs silent for ``watchdog_timeout``;
3. claim queued jobs up to ``runner_concurrency`` and start their processes.

Any number of runners (in servers or ``collector-hub runner`` processes, on any host) can
share one database; claiming with ``SKIP LOCKED`` starts each job exactly once.

On start a runner settles what a dead runner left running: its own jobs (same
``runner_id``) and jobs of a runner on this host whose process is gone. They fail with a clear
error, and a collector process still running for them is killed.

On stop it claims nothing more, stops its processes (SIGTERM, then SIGKILL after
``cancel_grace_period``) and hands their jobs back to the queue, to start again from the
beginning on the next runner: stopping a server for a deploy should not fail work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import re
import shlex
import socket
import time
from collections.abc import Awaitable, Callable

import aiopg

from collectors.contract import RUNNER_HEARTBEAT_SECONDS
from collectors.registry import CollectorSpec
from collectors.vendor_settings import credentials_missing
from server.background import BackgroundLoop
from server.db import database
from server.joblogs import store as logs
from server.joblogs.writer import JobLog, secret_values
from server.runner.process import (
    CollectorProcess,
    StopReason,
    collector_environment,
    describe_end,
    describe_outcome,
    kill_orphaned_collector,
    process_exists,
)
from server.runner.protocol import StdoutProgress
from server.runner.throttle import ConflatingWriter
from server.runs import queue, runners
from server.settings import Settings

log = logging.getLogger(__name__)

# At most this many stdout progress writes per second per job.
STDOUT_WRITES_PER_SECOND = 10
REQUEUED_MESSAGE = "Requeued: the runner stopped before the collector finished"
# Extra time stop() allows beyond the grace period, for the last database writes.
STOP_MARGIN_SECONDS = 10.0
STOPPABLE_STATUSES = frozenset({"cancelled", "failed"})
# Recording an outcome is retried through about 15 s of database outage.
OUTCOME_ATTEMPTS = 6


@dataclasses.dataclass
class _ActiveRun:
    job: queue.ClaimedJob
    process: CollectorProcess
    log: JobLog


class Runner:
    """Claims and runs jobs for the collectors in ``registry``; see the module docstring."""

    def __init__(
        self, pool: aiopg.Pool, database_url: str, registry: dict[str, CollectorSpec], settings: Settings
    ) -> None:
        self._pool = pool
        self._database_url = database_url
        self._registry = dict(registry)
        self._settings = settings
        # What it can run: a vendor collector only with its credentials (in the environment a
        # run gets). The others it knows but leaves to runners that have them.
        self._missing = {
            name: missing
            for name, spec in registry.items()
            if (missing := credentials_missing(spec.command, collector_environment(spec, "", "")))
        }
        self._offered = sorted(name for name in registry if name not in self._missing)
        self.runner_id = settings.runner_id
        self.host = socket.gethostname()
        self._runs: dict[str, _ActiveRun] = {}
        self._loop = BackgroundLoop(f"runner {self.runner_id}", self._tick, interval=settings.runner_poll_interval)
        self._last_watchdog = 0.0
        self._last_heartbeat: float | None = None
        # Sweep often enough to catch silence within about a quarter of the timeout.
        self._watchdog_every = max(settings.runner_poll_interval, min(settings.watchdog_timeout / 4, 5.0))

    @property
    def running_job_ids(self) -> list[str]:
        return list(self._runs)

    def wake(self) -> None:
        """Poll now instead of at the next interval (e.g. a batch was just queued here, or a
        NOTIFY said the queue changed)."""
        self._loop.wake()

    def job_ended(self, job_id: str, status: str) -> None:
        """A NOTIFY says ``job_id`` ended with ``status``: if this runner runs its process and the
        job was cancelled or failed elsewhere, tick now to stop it, not at the next poll."""
        if job_id in self._runs and status in STOPPABLE_STATUSES:
            self.wake()

    async def start(self) -> None:
        """Settle what a dead runner left behind, then start claiming."""
        try:
            await self.settle_abandoned_jobs()
        except Exception:  # the loop retries the database; settling again is the watchdog's job
            log.exception("runner %s could not settle abandoned jobs", self.runner_id)
        self._loop.start()
        log.info(
            "runner %s started: up to %s collector(s) at once, collectors: %s",
            self.runner_id,
            self._settings.runner_concurrency,
            ", ".join(self._offered),
        )
        for name, missing in sorted(self._missing.items()):
            log.warning(
                "runner %s does not take %s jobs: %s not set (docs/COLLECTORS.md, Runner routing)",
                self.runner_id,
                name,
                " and ".join(missing),
            )

    async def stop(self) -> None:
        """Claim nothing more, stop running processes and requeue their jobs. Bounded by the
        grace period plus a margin; anything slower is cancelled (its process killed)."""
        # Let the current tick finish: cancelling a claim mid-commit could strand jobs.
        await self._loop.stop(STOP_MARGIN_SECONDS)
        for run in list(self._runs.values()):
            run.process.request_stop(StopReason.SHUTDOWN)
        await self._loop.drain(self._settings.cancel_grace_period + STOP_MARGIN_SECONDS)
        try:
            await runners.record_stop(self._pool, self.runner_id)
        except database.OUTAGE_ERRORS as exc:  # its heartbeat goes stale on its own
            log.warning("runner %s could not record its stop: %s", self.runner_id, exc)
        log.info("runner %s stopped", self.runner_id)

    async def _heartbeat(self, now: float) -> None:
        """Say what this runner offers and runs (GET /api/runners; the unclaimable timeout)."""
        if self._last_heartbeat is not None and now - self._last_heartbeat < RUNNER_HEARTBEAT_SECONDS:
            return
        await runners.record_heartbeat(
            self._pool,
            self.runner_id,
            self.host,
            self._offered,
            self._settings.runner_concurrency,
            list(self._runs),
            self._settings.runner_labels,
            sorted(self._missing),
        )
        self._last_heartbeat = now

    async def _tick(self) -> bool:
        await self._stop_jobs_ended_elsewhere()
        now = asyncio.get_running_loop().time()
        await self._heartbeat(now)
        if now - self._last_watchdog >= self._watchdog_every:
            self._last_watchdog = now
            failed = await queue.fail_silent_jobs(self._pool, self._settings.watchdog_timeout)
            if failed:
                log.warning("watchdog failed silent job(s): %s", ", ".join(failed))
                await self._stop_jobs_ended_elsewhere()
        if not self._loop.stopping:
            await self._claim_and_start()
        return False  # a slot that frees up wakes the loop

    async def _stop_jobs_ended_elsewhere(self) -> None:
        if not self._runs:
            return
        states = await queue.job_states(self._pool, list(self._runs))
        for job_id, run in list(self._runs.items()):
            state = states.get(job_id)
            # A job that completed by its own report is left to exit by itself (its timeout
            # still applies); one cancelled, failed or deleted has no reason to keep running,
            # nor one whose attempt ended elsewhere (the watchdog's failure, with a retry due).
            if (
                state is None
                or state.status in STOPPABLE_STATUSES
                or not _still_running_here(state, run, self.runner_id)
            ):
                run.process.request_stop(StopReason.JOB_ENDED)

    async def _claim_and_start(self) -> None:
        free = self._settings.runner_concurrency - len(self._runs)
        claimed = await queue.claim_jobs(
            self._pool,
            free,
            self.runner_id,
            self.host,
            self._offered,
            busy=list(self._runs),
            labels=self._settings.runner_labels,
        )
        for job in claimed:
            spec = self._registry[job.collector]
            env = collector_environment(spec, job.job_id, self._database_url)
            writer = ConflatingWriter(
                functools.partial(self._write_stdout_progress, job.job_id), 1.0 / STDOUT_WRITES_PER_SECOND
            )
            job_log = JobLog(
                self._pool,
                job.job_id,
                max_lines=self._settings.job_log_max_lines,
                max_bytes=self._settings.job_log_max_bytes,
                secrets=secret_values(spec.env),
                stored=await self._stored_log_lines(job.job_id),
            )
            if job.attempt > 1:  # the note that separates this attempt's lines from the last one's
                job_log.add("system", f"Runner {self.runner_id} starts attempt {job.attempt} of {job.max_attempts}")
            elif job_log.restarted:
                job_log.add("system", f"Runner {self.runner_id} starts the collector again from the beginning")

            def on_line(stream: str, text: str, progress: bool, cut: int, job_log: JobLog = job_log) -> None:
                job_log.add(stream, text, progress=progress, cut_bytes=cut)

            process = CollectorProcess(
                spec, env, self._settings.cancel_grace_period, writer.submit, on_line, job_log.redact
            )
            run = _ActiveRun(job, process, job_log)
            self._runs[job.job_id] = run
            await self._loop.spawn(self._execute(run, writer), name=f"job {job.job_id}")
            log.info("runner %s started job %s (%s)", self.runner_id, job.job_id, job.collector)

    async def _stored_log_lines(self, job_id: str) -> list[tuple[int, int]]:
        """What an earlier run of the job logged; an error must not strand the jobs just claimed
        (at worst this run's lines number from 1 again and replace those)."""
        try:
            return await logs.stored_line_sizes(self._pool, job_id)
        except Exception as exc:
            log.warning("job %s: could not read its earlier log lines: %s", job_id, exc)
            return []

    async def _write_stdout_progress(self, job_id: str, report: StdoutProgress) -> bool:
        return await queue.report_running_progress(self._pool, job_id, self.runner_id, report.percent, report.message)

    async def _execute(self, run: _ActiveRun, writer: ConflatingWriter) -> None:
        job = run.job
        started = time.monotonic()
        try:
            result = await run.process.run(lambda pid: self._process_started(run, pid))
            await writer.close()
            outcome = describe_outcome(result, run.process.spec.timeout)
            # Every line is stored before the job ends, so a reader that sees it ended has them all.
            note = describe_end(result, time.monotonic() - started)
            if result.start_error is not None:  # no start note: say here which runner tried
                note = f"Runner {self.runner_id}: {note}"
            run.log.add("system", note)
            await run.log.close()
            if outcome is not None:
                recorded = await self._persist(
                    lambda: queue.finish_job(
                        self._pool, job.job_id, self.runner_id,
                        outcome.status, outcome.message, outcome.error, outcome.exit_code, job.attempt,
                    )
                )  # fmt: skip
                if recorded:
                    log.info("job %s (%s) %s: %s", job.job_id, job.collector, outcome.status, outcome.message)
                else:
                    log.info("job %s (%s): process ended; the job had already ended", job.job_id, job.collector)
            elif result.stopped_for is StopReason.SHUTDOWN:
                if await self._persist(
                    lambda: queue.requeue_job(self._pool, job.job_id, self.runner_id, REQUEUED_MESSAGE)
                ):
                    log.info("job %s (%s) handed back to the queue", job.job_id, job.collector)
        except Exception:
            log.exception("job %s (%s): could not record the outcome", job.job_id, job.collector)
        finally:
            await writer.cancel()
            await run.log.cancel()
            if self._runs.get(job.job_id) is run:
                del self._runs[job.job_id]

    async def _persist(self, write: Callable[[], Awaitable[bool]]) -> bool:
        """An outcome is worth waiting for: retry through a short database outage (a lost
        outcome would leave the job running until the watchdog fails it)."""
        delay = 0.5
        for _ in range(OUTCOME_ATTEMPTS - 1):
            try:
                return await write()
            except database.OUTAGE_ERRORS as exc:
                log.warning("database unavailable (%s); retrying in %gs", str(exc).strip() or type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay *= 2
        return await write()

    async def _process_started(self, run: _ActiveRun, pid: int) -> None:
        """The log's first note (which runner, which process, which command), then the pid in
        the job's row. The note is added before the first await, so before the output readers
        run: it always comes before the collector's own lines."""
        command = shlex.join(run.process.spec.command)
        run.log.add("system", f"Runner {self.runner_id} started pid {pid}: {command}")
        await queue.record_pid(self._pool, run.job.job_id, self.runner_id, pid)

    async def settle_abandoned_jobs(self) -> list[str]:
        """Fail the jobs a dead runner left running: this runner's own (same runner_id, so a
        previous life of it), and those of a runner on this host whose process is gone.
        Returns the failed job ids."""
        settled = []
        for job in await queue.running_jobs_on(self._pool, self.host, self.runner_id):
            if job.job_id in self._runs:
                continue
            if job.runner_id == self.runner_id:
                why = f"Runner {self.runner_id} restarted while the job was running; the run was abandoned"
            elif job.host == self.host and self._is_dead_local_runner(job.runner_id):
                why = f"Runner {job.runner_id} stopped unexpectedly while the job was running"
            else:
                continue
            if job.pid is not None and job.host == self.host and kill_orphaned_collector(job.pid, job.job_id):
                log.warning("killed orphaned collector process %s of job %s", job.pid, job.job_id)
            if await queue.fail_abandoned_job(self._pool, job.job_id, job.runner_id, why):
                settled.append(job.job_id)
        if settled:
            log.warning("runner %s settled abandoned job(s): %s", self.runner_id, ", ".join(settled))
        return settled

    def _is_dead_local_runner(self, runner_id: str | None) -> bool:
        """True for a runner with the default id ``HOST:PID`` of this host whose process no
        longer exists. Other ids say nothing about liveness; the watchdog covers those."""
        match = re.fullmatch(r"(?P<host>.+):(?P<pid>\d+)", runner_id or "")
        if match is None or match["host"] != self.host:
            return False
        return not process_exists(int(match["pid"]))


def _still_running_here(state: queue.JobState, run: _ActiveRun, runner_id: str) -> bool:
    """Whether the job's row still says this runner runs this attempt (a completed job counts:
    its process is left to exit by itself)."""
    if state.status == "completed":
        return True
    return state.status == "running" and state.runner_id == runner_id and state.attempt == run.job.attempt
