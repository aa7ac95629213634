"""The webhook dispatcher: one per server process, on every node.

It claims due deliveries from the outbox (``outbox.claim_due``: SKIP LOCKED plus a lease, so
each attempt is made by one node), sends each as a signed POST, and records the attempt and
what follows from it in one transaction. All state lives in the database, so a restart in
the middle of a retry schedule simply picks it up again.

Rules (issue 4): 2xx is success; redirects are not followed and count as failures; 410
disables the receiver; 429 and 503 honour ``Retry-After``; anything else, timeouts and
network errors retry on ``COLLECTOR_HUB_WEBHOOK_RETRY_SCHEDULE`` (with jitter), after which
the delivery is failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
import time

import aiohttp
import aiopg
from yarl import URL

from collectors.retry_after import parse_retry_after
from server.background import BackgroundLoop
from server.observability.metrics import WEBHOOK_ATTEMPTS
from server.settings import Settings
from server.webhooks import outbox
from server.webhooks.payload import build_body
from server.webhooks.rules.address_guard import make_connector
from server.webhooks.rules.public_addresses import url_problem
from server.webhooks.rules.signing import signature_headers

log = logging.getLogger(__name__)

STORED_RESPONSE_BYTES = 1024  # what the deliveries API shows of a response body
MAX_RETRY_AFTER = 24 * 3600.0
JITTER = 0.1  # each scheduled delay is stretched or shrunk by up to 10 %
LEASE_MARGIN = 5.0  # a claim lasts twice the attempt timeout plus this, then another node may retry
USER_AGENT = "collector-hub-webhooks/1"


def decide(
    status: int | None, retry_after: float | None, round_attempts: int, schedule: tuple[float, ...]
) -> outbox.Outcome:
    """What an attempt's result means for the delivery and the receiver."""
    if status is not None and 200 <= status < 300:
        return outbox.Outcome("succeeded", receiver_ok=True)
    if status == 410:
        return outbox.Outcome("failed", disable_reason="receiver answered 410 Gone")
    if round_attempts > len(schedule):
        return outbox.Outcome("failed")
    if status in (429, 503) and retry_after is not None:
        return outbox.Outcome("pending", retry_in=retry_after)
    delay = schedule[round_attempts - 1]
    return outbox.Outcome("pending", retry_in=delay * random.uniform(1 - JITTER, 1 + JITTER))


def metric_outcome(record: outbox.AttemptRecord, outcome: outbox.Outcome) -> str:
    """The ``outcome`` label of collector_hub_webhook_attempts_total."""
    if outcome.delivery_status == "succeeded":
        return "delivered"
    if outcome.delivery_status == "failed":
        return "gave_up"
    if record.response_status is None:
        return "timeout" if record.error and record.error.startswith("timed out") else "error"
    return "failed"


async def read_some(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body; the rest is never read (the connection is closed)."""
    chunks: list[bytes] = []
    have = 0
    while have < limit:
        chunk = await response.content.read(limit - have)
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


def describe_error(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, aiohttp.ClientConnectorError) and exc.__cause__ else exc
    text = str(cause) or type(cause).__name__
    return f"{type(exc).__name__}: {text}"[:1000]


class Dispatcher:
    def __init__(self, pool: aiopg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._loop = BackgroundLoop(
            "webhook dispatcher", self._claim_and_start, interval=settings.webhook_poll_interval
        )
        self._session: aiohttp.ClientSession | None = None
        self._token_prefix = secrets.token_hex(6)

    async def start(self) -> None:
        connector = make_connector(
            allow_private=self._settings.webhook_allow_private, limit=self._settings.webhook_concurrency
        )
        # trust_env stays off: a proxy from the environment would bypass the address guard.
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        self._loop.start()

    def wake(self) -> None:
        """Look for due deliveries now (a batch just ended), not at the next poll."""
        self._loop.wake()

    async def stop(self) -> None:
        """Stop claiming, give in-flight attempts up to the attempt timeout to finish and be
        recorded, then cancel what is left (those deliveries are retried after their lease)."""
        grace = self._settings.webhook_timeout + 2
        await self._loop.stop(grace)
        cancelled = await self._loop.drain(grace)
        if cancelled:
            log.warning("cancelled %d webhook attempt(s) at shutdown; they are retried later", cancelled)
        if self._session is not None:
            await self._session.close()

    async def _claim_and_start(self) -> bool:
        """One poll: claim as many due deliveries as there are free slots and start each
        attempt. True when every slot was filled (there may be more due rows right now)."""
        free = self._settings.webhook_concurrency - self._loop.in_flight
        if free <= 0:
            return False  # an attempt that ends wakes the loop
        token = f"{self._token_prefix}-{secrets.token_hex(6)}"
        lease = 2 * self._settings.webhook_timeout + LEASE_MARGIN
        claims = await outbox.claim_due(self._pool, token, free, lease)
        for claim in claims:
            await self._loop.spawn(self._deliver(claim), name=f"webhook-{claim.delivery_id}")
        return len(claims) == free

    async def _deliver(self, claim: outbox.Claim) -> None:
        body = claim.body
        if body is None:
            built = await build_body(self._pool, claim)
            body = await outbox.store_body(self._pool, claim.delivery_id, built)
            if body is None:
                return
        record, retry_after = await self._post(claim, body)
        outcome = decide(
            record.response_status, retry_after, claim.round_attempts, self._settings.webhook_retry_schedule
        )
        held = await outbox.record_attempt(self._pool, claim, record, outcome, self._settings.webhook_disable_after)
        WEBHOOK_ATTEMPTS.labels(outcome=metric_outcome(record, outcome)).inc()
        log.info(
            "webhook %s delivery %s attempt %d: %s -> %s%s",
            claim.webhook_id,
            claim.delivery_id,
            claim.attempt_number,
            record.response_status or record.error,
            outcome.delivery_status,
            "" if held else " (lease lost; left to its new holder)",
        )

    async def _post(self, claim: outbox.Claim, body: bytes) -> tuple[outbox.AttemptRecord, float | None]:
        assert self._session is not None
        attempted_at = dt.datetime.now(dt.UTC)
        started = time.monotonic()
        status: int | None = None
        response_body: str | None = None
        error: str | None = None
        retry_after: float | None = None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",  # the stored response excerpt stays readable
            **signature_headers(claim.secrets, claim.delivery_id, int(attempted_at.timestamp()), body),
        }
        problem = url_problem(URL(claim.url), allow_private=self._settings.webhook_allow_private)
        if problem is not None:
            error = f"refused: {problem}"
        else:
            try:
                async with self._session.post(
                    claim.url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout),
                ) as response:
                    status = response.status
                    raw = await read_some(response, STORED_RESPONSE_BYTES)
                    response_body = raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), cap=MAX_RETRY_AFTER)
                    if 300 <= status < 400:
                        error = f"redirect not followed (Location: {response.headers.get('Location', '')[:500]})"
            except TimeoutError:
                error = f"timed out after {self._settings.webhook_timeout:g} s"
            except aiohttp.ClientError as exc:
                error = describe_error(exc)
        duration_ms = round((time.monotonic() - started) * 1000)
        return outbox.AttemptRecord(attempted_at, duration_ms, status, response_body, error), retry_after
