"""One vendor collection, from the vendor's pages into the inventory, with progress.

The seam: a vendor module provides a :class:`DeviceSource` (pages of normalized devices, and
optionally pages of hardware details) and knows nothing of the database; this module drives
any source the same way:

- the next page is fetched while the current one is stored (one page ahead, no more: memory
  stays flat whatever the account size);
- after each page, ``running`` with a percent and "Fetched 3,000 of 12,400 computers". With no
  vendor total the previous complete run's count is the estimate ("of about"), the percent
  never reaches 100 before the end, and it is ``null`` when there is nothing to go on;
- SIGTERM (a cancel, the timeout, a runner stopping) stops between pages: the page being
  stored commits or not as a whole, nothing is marked removed;
- a complete run marks what it did not see removed and completes the job in one transaction;
- every failure ends the job ``failed`` with a one-line error that holds no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import psycopg2

from collectors.contract import DATABASE_URL_ENV, EXIT_CONFIG, EXIT_TEMPFAIL, JOB_ID_ENV
from collectors.inventory_records import DeviceRecord, VendorRecord
from collectors.inventory_store import InventoryWriter, RunRefused
from collectors.progress import ProgressError, update_job_progress
from collectors.vendor_connection import HttpSession
from collectors.vendor_http import VendorError, VendorStatusError, redact
from collectors.vendor_settings import VendorSettingsError

T = TypeVar("T")
Details = list[tuple[str, str | None, str | None, str | None]]
FINAL_MESSAGE = "Collected {seen} devices ({new} new, {gone} gone)"
ERROR_CHARS = 1000

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Page:
    records: list[DeviceRecord] | list[VendorRecord]
    total: int | None = None  # the vendor's total, when its answer carries one


class DeviceSource(Protocol):
    vendor: str  # "NinjaOne"
    noun: str  # what the vendor calls a device, for progress messages
    has_details: bool  # whether details() adds a second phase

    def pages(self) -> AsyncGenerator[Page, None]: ...

    def details(self) -> AsyncGenerator[Details, None]: ...


class ConfigLike(Protocol):
    @property
    def secrets(self) -> list[str]: ...


C = TypeVar("C", bound=ConfigLike)


class ProgressText:
    """Percent and message for each page (see the module docstring)."""

    def __init__(self, noun: str, estimate: int | None, ceiling: int) -> None:
        self.noun = noun
        self.estimate = estimate
        self.ceiling = ceiling
        self.percent: int | None = None

    def fetched(self, seen: int, total: int | None) -> tuple[int | None, str]:
        expected, about = (total, "") if total is not None else (self.estimate, "about ")
        if expected is None or expected <= 0:
            return self.percent, f"Fetched {seen:,} {self.noun}"
        # The fetch is the whole run (ceiling 99) or its first part (a second phase follows).
        share = 100 if self.ceiling >= 99 else self.ceiling
        self.percent = max(self.percent or 0, min(self.ceiling, seen * share // expected))
        if seen > expected:
            return self.percent, f"Fetched {seen:,} {self.noun} ({about}{expected:,} expected)"
        return self.percent, f"Fetched {seen:,} of {about}{expected:,} {self.noun}"


async def read_ahead(items: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """``items``, with the next one already being fetched while the caller handles this one."""
    pending: asyncio.Future[T] = asyncio.ensure_future(anext(items))
    try:
        while True:
            try:
                item = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(items))
            yield item
    finally:
        pending.cancel()
        with contextlib.suppress(BaseException):
            await pending
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def _in_thread(call: Callable[..., T], *args: Any) -> T:
    """Run a database write in a thread; if we are cancelled meanwhile, let it finish first
    (a page commits or not as a whole, and the connection is never used by two threads)."""
    future = asyncio.get_running_loop().run_in_executor(None, call, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise


def _report(status: str, percent: int | None, message: str) -> None:
    update_job_progress(None, status, percent, message)


async def _phases(source: DeviceSource) -> AsyncGenerator[Page | Details, None]:
    """The device pages, then the pages of hardware details: one stream, so that reading ahead
    fetches the first page of details while the last page of devices is being stored (the
    writes keep their order: every device page, then the details)."""
    async with contextlib.aclosing(source.pages()) as pages:
        async for page in pages:
            yield page
    if source.has_details:
        async with contextlib.aclosing(source.details()) as details:
            async for rows in details:
                yield rows


async def collect(source: DeviceSource, writer: InventoryWriter) -> str:
    """Drive one collection into ``writer`` (already open); return the final message.

    Each page is stored and then reported in one call on the writer's thread, so the event loop
    goes on reading the next page meanwhile; the first page is on its way while the job says
    it is connecting."""
    estimate = await _in_thread(writer.previous_count)
    progress = ProgressText(source.noun, estimate, 90 if source.has_details else 99)
    done = 0

    def store(item: Page | Details) -> None:
        nonlocal done
        if isinstance(item, Page):
            writer.write_page(item.records)
            _report("running", *progress.fetched(writer.seen, item.total))
            return
        writer.write_details(item)
        done += len(item)
        percent = 90 + min(9, done * 9 // max(writer.seen, 1))
        _report("running", percent, f"Read hardware details of {done:,} of {writer.seen:,} {source.noun}")

    stream = read_ahead(_phases(source))
    try:
        first = asyncio.ensure_future(anext(stream, None))
        try:
            await _in_thread(_report, "running", progress.percent, f"Connecting to {source.vendor}")
        except BaseException:
            first.cancel()
            with contextlib.suppress(BaseException):
                await first
            raise
        item = await first
        while item is not None:
            await _in_thread(store, item)
            item = await anext(stream, None)
    finally:
        await stream.aclose()
    counts = await _in_thread(writer.complete, FINAL_MESSAGE)
    return FINAL_MESSAGE.format(seen=f"{counts.seen:,}", new=f"{counts.new:,}", gone=f"{counts.gone:,}")


def exit_code_for(exc: Exception) -> int:
    """How a vendor collector exits for an error (docs/COLLECTORS.md, "Automatic retries"):
    EXIT_CONFIG for what retrying cannot fix (a setting, credentials the vendor refused, any
    HTTP error the vendor gives for a request it will never accept), EXIT_TEMPFAIL for what it
    may (the vendor unreachable, 5xx or 429 until the client's own retries ran out, a malformed
    answer, another run holding the inventory, the database), 1 for anything unexpected."""
    if isinstance(exc, VendorSettingsError | VendorStatusError):
        return EXIT_CONFIG
    if isinstance(exc, VendorError | RunRefused | psycopg2.Error):
        return EXIT_TEMPFAIL
    return 1


def _fail(name: str, error: str, secrets: list[str], code: int = 1) -> int:
    """Say why on stderr and in the job (status failed); return the exit status ``code``."""
    error = redact(error, secrets)[:ERROR_CHARS]
    print(f"{name}: {error}", file=sys.stderr, flush=True)
    with contextlib.suppress(ProgressError, psycopg2.Error):
        update_job_progress(None, "failed", None, error)
    return code


async def _run(name: str, config: C, make_source: Callable[[C, HttpSession], DeviceSource]) -> int:
    secrets = config.secrets
    job_id = os.environ.get(JOB_ID_ENV, "")
    dsn = os.environ.get(DATABASE_URL_ENV, "")
    if not job_id or not dsn:
        why = f"run by a runner only ({JOB_ID_ENV} and {DATABASE_URL_ENV} are not set)"
        return _fail(name, why, secrets, EXIT_CONFIG)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    writer = InventoryWriter(dsn, name, job_id)
    try:
        await _in_thread(writer.open)
        async with HttpSession() as session:
            message = await collect(make_source(config, session), writer)
        print(f"{name}: {message}", file=sys.stderr, flush=True)
        return 0
    except asyncio.CancelledError:
        await _in_thread(writer.close, "stopped")
        stored = f"{writer.seen:,} devices stored"
        print(f"{name}: stopped between pages ({stored}); nothing was marked removed", file=sys.stderr)
        return 1
    except ProgressError as exc:  # the job ended elsewhere (cancelled, watchdog): stop quietly
        await _in_thread(writer.close, "stopped")
        print(f"{name}: stopping: {redact(str(exc), secrets)}", file=sys.stderr)
        return 1
    except (VendorError, RunRefused) as exc:
        await _in_thread(writer.close, "failed")
        return _fail(name, str(exc), secrets, exit_code_for(exc))
    except psycopg2.Error as exc:
        await _in_thread(writer.close, "failed")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _fail(name, f"inventory database error: {first}", secrets, exit_code_for(exc))
    except Exception as exc:
        await _in_thread(writer.close, "failed")
        print(redact("".join(traceback.format_exception(exc)), secrets), file=sys.stderr)
        return _fail(name, f"unexpected error: {type(exc).__name__}: {exc}", secrets)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run_vendor_collector(
    name: str,
    load_config: Callable[[Mapping[str, str]], C],
    make_source: Callable[[C, HttpSession], DeviceSource],
) -> int:
    """The ``main()`` of a vendor collector process."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=f"{name}: %(message)s")
    try:
        config = load_config(os.environ)
    except VendorSettingsError as exc:
        return _fail(name, str(exc), [], exit_code_for(exc))
    return asyncio.run(_run(name, config, make_source))


async def check_vendor(config: C, check: Callable[[C, HttpSession], Awaitable[str]]) -> tuple[bool, str]:
    """Run a vendor's credentials-and-connectivity check; (ok, what it found or why not)."""
    try:
        async with HttpSession() as session:
            found = await check(config, session)
        return True, redact(found, config.secrets)
    except VendorError as exc:
        return False, redact(str(exc), config.secrets)


def check_collector(
    load_config: Callable[[Mapping[str, str]], C],
    check: Callable[[C, HttpSession], Awaitable[str]],
    environ: Mapping[str, str],
) -> tuple[bool, str]:
    """``collector-hub collectors check``: settings, credentials and connectivity, no run."""
    try:
        config = load_config(environ)
    except VendorSettingsError as exc:
        return False, str(exc)
    return asyncio.run(check_vendor(config, check))


def vendor_main(
    name: str,
    load_config: Callable[[Mapping[str, str]], C],
    make_source: Callable[[C, HttpSession], DeviceSource],
    check: Callable[[C, HttpSession], Awaitable[str]],
    argv: list[str],
) -> int:
    """``python -m collectors.NAME`` runs a collection; ``... --check`` only checks."""
    if argv == ["--check"]:
        ok, text = check_collector(load_config, check, os.environ)
        print(f"{name}: {'OK' if ok else 'FAILED'}: {text}", file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    if argv:
        print(f"{name}: unknown arguments {' '.join(argv)!r}; the only option is --check", file=sys.stderr)
        return 2
    return run_vendor_collector(name, load_config, make_source)
