"""Prometheus metrics: every metric of the server, defined once, in one registry.

Other modules import the metric they update (``from server.observability.metrics import RATE_LIMITED``)
and call ``.inc()``, ``.observe()`` or ``.labels(...).inc()`` on it; ``GET /metrics`` renders
the registry in the Prometheus text format. The registry is this module's own (not
``prometheus_client``'s global one) so that importing a library that registers its own
collectors cannot add surprise series, and so tests can read values with
``sample_value(...)``.

The three metrics live push updates for every pushed state (events published and delivered,
fanout latency) are plain numbers instead (:class:`PlainCounter`, :class:`PlainHistogram`),
read when the registry is rendered: the same series in the same format, without the calls,
the lock and the checks of prometheus_client's ``inc`` and ``observe`` on the hot path
(docs/LIVE_PUSH.md, the fixed cost per state). A series is updated with ``.count += n`` or
``.observe(value)``, on the event loop's thread.

Label values are always from a small closed set (route templates, not paths; statuses;
transports), so no client can grow the number of series.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "collector_hub_"

# --- HTTP (the access-log middleware) ---------------------------------------------------------
HTTP_REQUESTS = Counter(
    PREFIX + "http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    PREFIX + "http_request_duration_seconds",
    "Time from request to the end of the response (streams: the whole connection), by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    PREFIX + "auth_failures",
    "Requests refused by authentication or authorisation, by reason (missing, invalid, forbidden, origin).",
    ["reason"],
    registry=REGISTRY,
)

# --- Rate limits ------------------------------------------------------------------------------
RATE_LIMITED = Counter(
    PREFIX + "rate_limited_requests",
    "Requests refused with 429 because the client was over its rate limit.",
    registry=REGISTRY,
)
RATE_LIMIT_BACKEND_ERRORS = Counter(
    PREFIX + "rate_limit_backend_errors",
    "Rate-limit checks that could not reach Redis and fell back to in-process counters (fail open).",
    registry=REGISTRY,
)

# --- Jobs (set from the database at scrape time) ----------------------------------------------
JOBS = Gauge(
    PREFIX + "jobs",
    "Jobs in the database, by status (read from PostgreSQL when /metrics is scraped).",
    ["status"],
    registry=REGISTRY,
)


@dataclasses.dataclass
class JobFigures:
    """What the job metrics export, as read from the database at the last scrape."""

    bounds: Sequence[float] = ()
    # (collector, status, finished, duration bucket counts, duration sum, wait bucket counts, wait sum, wait count)
    finished: Sequence[tuple[str, str, int, Sequence[int], float, Sequence[int], float, int]] = ()
    queue_depth: dict[str, int] = dataclasses.field(default_factory=dict)
    oldest_queued_seconds: float = 0.0


class JobMetrics(Collector):
    """Job durations, queue waits, finished counts and the queue, exported from the figures
    of the last scrape (server/service/metrics_route.py reads them from PostgreSQL:
    sql/006_run_operations.sql counts each job once when it ends, whoever ended it, so every
    process exports the same values; use ``max`` across processes, never ``sum``)."""

    def __init__(self) -> None:
        self.figures = JobFigures()

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        duration = HistogramMetricFamily(
            PREFIX + "job_duration_seconds",
            "Duration of ended jobs from process start (or request, if never started) to end, by collector and status.",
            labels=["collector", "status"],
        )
        wait = HistogramMetricFamily(
            PREFIX + "job_queue_wait_seconds",
            "Time ended jobs waited from request to process start, by collector.",
            labels=["collector"],
        )
        finished = CounterMetricFamily(
            PREFIX + "jobs_finished", "Jobs that ended, by collector and final status.", labels=["collector", "status"]
        )
        waits: dict[str, tuple[list[int], float]] = {}
        for collector, status, count, d_buckets, d_sum, w_buckets, w_sum, _ in figures.finished:
            duration.add_metric([collector, status], _cumulative(figures.bounds, d_buckets), d_sum)
            finished.add_metric([collector, status], count)
            counts, total = waits.get(collector, ([0] * len(w_buckets), 0.0))
            waits[collector] = ([a + b for a, b in zip(counts, w_buckets, strict=True)], total + w_sum)
        for collector, (counts, total) in sorted(waits.items()):
            wait.add_metric([collector], _cumulative(figures.bounds, counts), total)
        depth = GaugeMetricFamily(PREFIX + "queue_depth", "Queued jobs, by collector.", labels=["collector"])
        for collector, queued in sorted(figures.queue_depth.items()):
            depth.add_metric([collector], queued)
        oldest = GaugeMetricFamily(
            PREFIX + "oldest_queued_seconds", "How long the oldest queued job has waited (0 when none is queued)."
        )
        oldest.add_metric([], figures.oldest_queued_seconds)
        yield from (duration, wait, finished, depth, oldest)


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one +Inf) as Prometheus's cumulative ``le`` buckets."""
    running = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        running += count
        buckets.append((bound, running))
    return buckets


JOB_METRICS = JobMetrics()
REGISTRY.register(JOB_METRICS)

# --- Live push (server/realtime/) -------------------------------------------------------------
OPEN_CONNECTIONS = Gauge(
    PREFIX + "open_connections",
    "Open live connections, by transport (websocket, sse, longpoll).",
    ["transport"],
    registry=REGISTRY,
)


class Tally:
    """One series of a :class:`PlainCounter`: live push adds to ``count`` (``count += n``, on
    the event loop's thread), and a scrape reads it."""

    __slots__ = ("count", "created")

    def __init__(self) -> None:
        self.count = 0
        self.created = time.time()


class PlainCounter(Collector):
    """A counter with one label whose series are plain integers (:class:`Tally`): exported
    as prometheus_client's ``Counter`` exports its own (``_total`` and ``_created``), a series
    from the first ``labels(value)`` on."""

    def __init__(self, name: str, documentation: str, label: str, registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self._label = label
        self._series: dict[str, Tally] = {}
        registry.register(self)

    def labels(self, value: str) -> Tally:
        """The series for this label value (look it up once, then add to its ``count``)."""
        tally = self._series.get(value)
        if tally is None:
            tally = self._series[value] = Tally()
        return tally

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, tally in self._series.items():
            family.add_metric([value], tally.count, created=tally.created)
        yield family


class PlainHistogram(Collector):
    """A histogram without labels kept in plain numbers, exported as prometheus_client's
    ``Histogram`` exports its own (cumulative ``le`` buckets, ``_count``, ``_sum``,
    ``_created``). ``observe`` is one call and one bisection."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(float(bound) for bound in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket, the last one +Inf
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1  # le: a value on a bound is in it
        self._sum += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation)
        family.add_metric([], _cumulative(self._bounds, self._counts), self._sum)
        family.add_sample(self._name + "_created", {}, self._created)
        yield family


EVENTS_PUBLISHED = PlainCounter(
    PREFIX + "events_published",
    "State changes published to this process's subscribers (one per object change, serialized once), by kind.",
    "kind",
    REGISTRY,
)
EVENTS_DELIVERED = PlainCounter(
    PREFIX + "events_delivered",
    "Events written to a subscriber, by transport.",
    "transport",
    REGISTRY,
)
FANOUT_LATENCY = PlainHistogram(
    PREFIX + "fanout_latency_seconds",
    "Time from the NOTIFY wake-up to the event being handed to every subscriber's outbox.",
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    REGISTRY,
)
EVENT_LOOP_TASKS = Gauge(
    PREFIX + "event_loop_tasks",
    "Tasks alive in this process's event loop (read at scrape time): steady with steady traffic, or something leaks.",
    registry=REGISTRY,
)
OPEN_FDS = Gauge(
    PREFIX + "open_fds",
    "File descriptors open in this process (read at scrape time from /proc/self/fd; 0 where there is none).",
    registry=REGISTRY,
)
SLOW_SUBSCRIBERS_DROPPED = Counter(
    PREFIX + "slow_subscribers_dropped",
    "Subscribers disconnected because their outbox stayed over its bound, by transport.",
    ["transport"],
    registry=REGISTRY,
)

# --- Webhooks (server/webhooks/) --------------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter(
    PREFIX + "webhook_attempts",
    "Webhook delivery attempts, by outcome (delivered, failed, timeout, error, gave_up).",
    ["outcome"],
    registry=REGISTRY,
)

# --- Collector health (server/health/; read from PostgreSQL at scrape time) ------------------
COLLECTOR_LAST_SUCCESS = Gauge(
    PREFIX + "collector_last_success_timestamp_seconds",
    "When each collector's last successful run ended, in Unix seconds (absent until it has one).",
    ["collector"],
    registry=REGISTRY,
)
COLLECTOR_HEALTH = Gauge(
    PREFIX + "collector_health",
    "Each collector's health: 1 for its state (healthy, failing, stale), 0 for the others.",
    ["collector", "state"],
    registry=REGISTRY,
)
COLLECTOR_CONSECUTIVE_FAILURES = Gauge(
    PREFIX + "collector_consecutive_failures",
    "Failed runs of each collector since its last success.",
    ["collector"],
    registry=REGISTRY,
)

# --- Schedules (server/schedules/) ------------------------------------------------------------
SCHEDULE_FIRES = Counter(
    PREFIX + "schedule_fires",
    "Due times of schedules dealt with, by schedule name and outcome (fired, skipped_overlap,"
    " skipped_missed, skipped_invalid).",
    ["schedule", "outcome"],
    registry=REGISTRY,
)
SCHEDULE_LAG = Histogram(
    PREFIX + "schedule_lag_seconds",
    "Time from a schedule's due time to the creation of the batch it fired.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)


def render() -> bytes:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)


def sample_value(name: str, labels: dict[str, str] | None = None) -> float:
    """The current value of one sample (0 when it has never been set): for tests and logs."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else value
