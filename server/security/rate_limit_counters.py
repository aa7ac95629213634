"""Rate limits: N requests per minute per client on the run routes (the spec's "60 requests
per minute per client" on ``/api/collectors/runs/*`` and ``/api/collectors/history``; reads
only, see ``is_rate_limited``).

The client is the API key, else the JWT subject, else the address (the first untrusted hop of
``X-Forwarded-For`` when the peer is a trusted proxy, else the peer). Windows are fixed
minutes: simple to explain in headers (``RateLimit-Reset`` is when the count starts again) and
one atomic INCR per request. A client can at worst send 2N in the two seconds around a window
edge; for polling dashboards that is harmless.

With ``COLLECTOR_HUB_REDIS_URL`` the counters are in Redis, counted by one Lua script (INCR,
EXPIRE, and the window from Redis's own clock, so nodes with skewed clocks agree), shared by
every process and node. If Redis cannot be reached the request is counted in process instead
(fail open: the server keeps answering, per process), the failure is logged once per
``FAILURE_LOG_INTERVAL`` and counted in ``collector_hub_rate_limit_backend_errors_total``, and
Redis is not tried again for ``RETRY_REDIS_AFTER`` seconds so a hung Redis costs at most one
timeout per second. The Redis client is imported only when a Redis URL is set: a server without
one does not pay for the import at start. A request is counted once when it arrives, so a long-poll or stream holds
nothing while it waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import logging
import math
import time
from typing import TYPE_CHECKING

from server.observability.metrics import RATE_LIMIT_BACKEND_ERRORS
from server.settings import Settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
REDIS_TIMEOUT_SECONDS = 0.5
RETRY_REDIS_AFTER = 1.0
FAILURE_LOG_INTERVAL = 60.0
REDIS_KEY_PREFIX = "collector_hub:ratelimit:"

# KEYS[1]: the client's key prefix. ARGV[1]: window seconds. Returns {count, seconds to reset}.
COUNT_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
local window = tonumber(ARGV[1])
local start = now - (now % window)
local key = KEYS[1] .. ':' .. start
local count = redis.call('INCR', key)
if count == 1 then redis.call('EXPIRE', key, window * 2) end
return {count, start + window - now}
"""


@dataclasses.dataclass(frozen=True)
class Decision:
    limit: int
    count: int
    reset_seconds: int

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class LocalCounters:
    """Fixed windows in this process, aligned to the wall clock like Redis's."""

    def __init__(self) -> None:
        self._window_start = 0
        self._counts: dict[str, int] = {}

    def hit(self, client: str) -> tuple[int, int]:
        now = time.time()
        start = int(now) - int(now) % WINDOW_SECONDS
        if start != self._window_start:  # a new minute: every old count is over
            self._window_start, self._counts = start, {}
        count = self._counts.get(client, 0) + 1
        self._counts[client] = count
        return count, max(1, math.ceil(start + WINDOW_SECONDS - now))


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.limit = settings.rate_limit_per_minute
        self.local = LocalCounters()
        self.redis: aioredis.Redis | None = None
        self._script: object = None
        # What a failed Redis call raises (counted in process instead).
        self._backend_errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)
        if settings.redis_url is not None:
            self._backend_errors += (importlib.import_module("redis.exceptions").RedisError,)
            self.redis = importlib.import_module("redis.asyncio").from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._script = self.redis.register_script(COUNT_SCRIPT)
        self._redis_paused_until = 0.0
        self._next_failure_log = 0.0

    async def hit(self, client: str) -> Decision:
        count, reset = await self._count(client)
        return Decision(self.limit, count, reset)

    async def _count(self, client: str) -> tuple[int, int]:
        if self.redis is not None and time.monotonic() >= self._redis_paused_until:
            key = REDIS_KEY_PREFIX + hashlib.sha256(client.encode()).hexdigest()[:32]
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
                    count, reset = await self._script(keys=[key], args=[WINDOW_SECONDS])  # type: ignore[operator]
                return int(count), int(reset)
            except self._backend_errors as exc:
                self._redis_failed(exc)
        return self.local.hit(client)

    def _redis_failed(self, exc: BaseException) -> None:
        RATE_LIMIT_BACKEND_ERRORS.inc()
        now = time.monotonic()
        self._redis_paused_until = now + RETRY_REDIS_AFTER
        if now >= self._next_failure_log:
            self._next_failure_log = now + FAILURE_LOG_INTERVAL
            log.warning(
                "rate limits: Redis unreachable (%s); counting in this process until it answers "
                "(logged at most once a minute; see collector_hub_rate_limit_backend_errors_total)",
                type(exc).__name__ if not str(exc) else str(exc).splitlines()[0][:200],
            )

    async def redis_ok(self) -> bool | None:
        """For /readyz: None when no Redis is configured."""
        if self.redis is None:
            return None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
                await self.redis.ping()
            return True
        except self._backend_errors:
            return False

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
