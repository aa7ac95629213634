"""The HTTP client every vendor collector uses: timeouts, bounded retries with backoff and
jitter, ``Retry-After``, a client-side request rate limit, and errors fit for a job.

Retried: HTTP 408, 429 and 5xx, timeouts and connection failures, at most
``max_retries`` more times. The wait is ``Retry-After`` when the answer carries one (refused
when longer than ``max_retry_after``), else ``backoff * 2**n`` with full jitter, capped at
``max_backoff``. Not retried: other 4xx (the request itself is wrong; 401 and 403 become
:class:`VendorAuthError`) and malformed JSON.

Every error message names the vendor, the method and the path, never a header, a form body
or a query string: the credentials travel in those. :func:`redact` is the last line of
defence for text that could still hold one (an exception from a library).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import email.message
import http.client
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from collectors import vendor_json
from collectors.retry_after import parse_retry_after
from collectors.vendor_connection import HttpSession
from collectors.vendor_settings import HttpSettings

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DETAIL_CHARS = 200
WINDOW_SECONDS = 60.0


class VendorError(Exception):
    """A vendor call failed; ``str()`` is a message for the job's error (no secret)."""


class VendorUnavailable(VendorError):
    """The vendor could not be reached, or kept failing until the retries ran out."""


class VendorMalformed(VendorError):
    """The vendor answered something other than what its API documents."""


class VendorStatusError(VendorError):
    """An HTTP error that retrying will not fix."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class VendorAuthError(VendorStatusError):
    """The vendor refused our credentials (HTTP 401/403)."""


@dataclasses.dataclass(frozen=True)
class VendorResponse:
    status: int
    headers: email.message.Message  # names case-insensitive
    body: Any


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (4 characters or more) replaced by ``[redacted]``."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


class RequestLimiter:
    """At most ``per_minute`` requests in any 60-second window (0: no limit)."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._sent: collections.deque[float] = collections.deque()

    async def acquire(self) -> None:
        if self._per_minute <= 0:
            return
        while True:
            now = time.monotonic()
            while self._sent and now - self._sent[0] >= WINDOW_SECONDS:
                self._sent.popleft()
            if len(self._sent) < self._per_minute:
                self._sent.append(now)
                return
            await asyncio.sleep(self._sent[0] + WINDOW_SECONDS - now)


def _vendor_detail(raw: bytes) -> str:
    """A short, printable excerpt of a vendor's error body: its ``Message``/``message``/
    ``error_description``/``error`` field when it is JSON (ThreatLocker sends
    ``{"LoggerId", "StatusCode", "Message"}``, OAuth servers ``{"error", ...}``)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    for key in ("Message", "message", "error_description", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            text = "".join(c if c.isprintable() else " " for c in value.strip())
            return text[:DETAIL_CHARS]
    return ""


def _encoded_body(form: Mapping[str, str] | None, json_body: Any) -> tuple[bytes | None, dict[str, str]]:
    """The request's body, a form's or JSON's (or none), and the Content-Type header it needs."""
    if form is not None:
        return urllib.parse.urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    if json_body is not None:
        return json.dumps(json_body).encode(), {"Content-Type": "application/json"}
    return None, {}


class VendorClient:
    """JSON over HTTP to one vendor. ``secrets`` are scrubbed from every error message."""

    def __init__(
        self, vendor: str, base_url: str, settings: HttpSettings, session: HttpSession, secrets: list[str]
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self._session = session
        self.secrets = secrets
        self._limiter = RequestLimiter(settings.requests_per_minute)
        self.requests_sent = 0

    def _backoff(self, retry: int) -> float:
        ceiling = min(self.settings.max_backoff, self.settings.backoff * (2**retry))
        return random.uniform(0, ceiling)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> VendorResponse:
        """Send one request (retrying as the module says) and return its parsed JSON body."""
        what = f"{method} {path}"
        url = self.base_url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        body, content_type = _encoded_body(form, json_body)
        sent = dict(headers or {}) | content_type
        attempts = self.settings.max_retries + 1
        last_problem = ""
        for attempt in range(1, attempts + 1):
            await self._limiter.acquire()
            self.requests_sent += 1
            wait: float | None = None
            try:
                async with asyncio.timeout(self.settings.timeout):  # connect to last byte
                    resp = await self._session.request(
                        method, url, headers=sent, body=body, socket_timeout=self.settings.timeout
                    )
                if resp.status < 300:
                    return VendorResponse(resp.status, resp.headers, self._parse(resp.body, what, resp.status))
                detail = _vendor_detail(resp.body)
                problem = f"HTTP {resp.status}" + (f": {detail}" if detail else "")
                if resp.status not in RETRYABLE_STATUSES:
                    raise self._status_error(what, resp.status, problem)
                # No cap here: a longer wait than we accept fails the run, saying so.
                wait = parse_retry_after(resp.headers.get("Retry-After"), cap=float("inf"))
                if wait is not None and wait > self.settings.max_retry_after:
                    raise VendorUnavailable(
                        f"{self.vendor} asked to wait {wait:g} s before retrying {what} (HTTP {resp.status},"
                        f" Retry-After), longer than the {self.settings.max_retry_after:g} s this collector waits"
                    )
            except TimeoutError:
                problem = f"no answer within {self.settings.timeout:g} s"
            except OSError as exc:  # refused, unreachable, reset, TLS refused
                problem = f"cannot connect ({self._safe(exc)})"
            except http.client.HTTPException as exc:
                problem = f"HTTP client error ({self._safe(exc)})"
            last_problem = problem
            if attempt == attempts:
                break
            delay = wait if wait is not None else self._backoff(attempt - 1)
            log.warning(
                "%s %s: %s; retrying in %.1f s (attempt %d of %d)",
                self.vendor, what, problem, delay, attempt + 1, attempts,
            )  # fmt: skip
            await asyncio.sleep(delay)
        raise VendorUnavailable(
            f"{self.vendor} did not answer {what} at {self._host()} after {attempts} attempt(s): {last_problem}"
        )

    def _parse(self, raw: bytes, what: str, status: int) -> Any:
        if status == 204 or not raw:
            return None
        try:
            return vendor_json.decode(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise VendorMalformed(f"{self.vendor} sent a malformed answer to {what}: not JSON ({reason})") from None

    def _status_error(self, what: str, status: int, problem: str) -> VendorError:
        message = redact(f"{self.vendor} refused {what} ({problem})", self.secrets)
        if status in (401, 403):
            return VendorAuthError(message, status)
        return VendorStatusError(message, status)

    def _host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc

    def _safe(self, exc: Exception) -> str:
        text = str(exc).strip() or type(exc).__name__
        return redact(text, self.secrets)[:DETAIL_CHARS]
