"""Settings, parsed once at the edge (environment and CLI flags) and passed in.

Every ``COLLECTOR_HUB_*`` variable is validated here with a message that names the variable
and the bad value, so a typo stops the server at start instead of misbehaving later.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from collectors.contract import (
    DEFAULT_JOB_LOG_MAX_BYTES,
    DEFAULT_JOB_LOG_MAX_LINES,
    ENV_PREFIX,
    GRANTABLE_ROLES,
    RUNNER_LABEL,
)
from collectors.inventory_records import PLATFORMS
from collectors.variance_settings import VarianceSettings, VarianceSettingsError, load_variance_settings
from server.webhooks.rules.config import (
    DEFAULT_RETRY_SCHEDULE,
    DeclaredWebhook,
    WebhookConfigError,
    check_declared,
    parse_declared_webhooks,
    parse_retry_schedule,
)


class SettingsError(ValueError):
    """A setting has a value the server cannot use."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "collector-hub"


# The event loops serve can run on (``loop``): auto is uvloop's when it is installed, else asyncio's.
EVENT_LOOPS = ("auto", "asyncio", "uvloop")
# The spec's Security section.
DEFAULT_CORS_ORIGINS = ("https://dashboards.enersystems.com", "http://localhost:3000", "http://localhost:8080")


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5400
    database_url: str | None = None
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    collectors_file: Path | None = None
    # The in-process runner claims and runs queued jobs; turn it off for API-only nodes.
    run_collectors: bool = True
    runner_concurrency: int = 4
    runner_id: str = dataclasses.field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    runner_poll_interval: float = 1.0
    watchdog_timeout: float = 300.0
    cancel_grace_period: float = 10.0
    max_body_bytes: int = 64 * 1024
    db_pool_min: int = 1
    db_pool_max: int = 10
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_public: bool = False
    # Authentication (server/security/). Secrets stay out of repr, so settings can be logged.
    api_keys: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)  # (role, key)
    jwt_secret: str | None = dataclasses.field(default=None, repr=False)
    jwt_public_key_file: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_role_claim: str = "role"
    # Serve with no authentication on a non-loopback address (otherwise refused at start).
    allow_insecure: bool = False
    # Browsers (server/security/cors.py): origins allowed by CORS and for WebSocket handshakes.
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    # Rate limits (server/security/rate_limit_middleware.py); 0 turns them off.
    rate_limit_per_minute: int = 60
    redis_url: str | None = dataclasses.field(default=None, repr=False)  # may hold a password
    # Peers whose X-Forwarded-For is believed (addresses or networks).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # HTTPS/WSS (both or neither), and how long serve waits for requests in flight at SIGTERM.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_timeout: float = 10.0
    # Webhooks (server/webhooks/): receivers declared here are upserted at start.
    webhooks: tuple[DeclaredWebhook, ...] = dataclasses.field(default=(), repr=False)
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    webhook_timeout: float = 10.0
    webhook_allow_private: bool = False
    webhook_poll_interval: float = 1.0
    webhook_disable_after: float = 5 * 24 * 3600.0
    webhook_concurrency: int = 8
    # Live push (issue 3): streams, WebSocket limits, the LISTEN connection, the state cache.
    workers: int = 1
    loop: str = "auto"  # the event loop serve runs on: one of EVENT_LOOPS
    stream_heartbeat: float = 15.0
    stream_retry_ms: int = 3000
    stream_outbox_limit: int = 256
    stream_send_timeout: float = 30.0
    ws_max_message_bytes: int = 4096
    ws_max_subscriptions: int = 100
    ws_max_bad_messages: int = 5
    ws_compression: bool = False
    listener_ping_interval: float = 10.0
    listener_max_backoff: float = 30.0
    state_cache_size: int = 2000
    # Schedules (server/schedules/): whether this process fires them, how often it looks, and
    # how late a due time may be and still count as on time (later ones follow catch_up).
    run_schedules: bool = True
    schedule_poll_interval: float = 1.0
    schedule_misfire_grace: float = 60.0
    # Operating runs (issue 12): job log caps and retention, failing unclaimable jobs.
    job_log_max_lines: int = DEFAULT_JOB_LOG_MAX_LINES
    job_log_max_bytes: int = DEFAULT_JOB_LOG_MAX_BYTES
    log_retention_days: float = 30.0
    unclaimable_timeout: float = 3600.0
    health_interval: float = 30.0  # how often each node looks for a stale collector (server/health/)
    # The cross-vendor checks (docs/VARIANCES.md): read from their own CROSS_VENDOR_* variables,
    # which the checks' collector process reads too (collectors/variance_settings.py).
    variances: VarianceSettings = dataclasses.field(default_factory=VarianceSettings)
    # POST /api/collectors/run adds the cross-vendor checks when its body does not say (issue 22).
    cross_vendor_by_default: bool = True
    # Automatic retries (issue 24): the retries of the vendor collectors whose entry does not say.
    vendor_retries: int = 2
    # Runner routing (issue 24): this runner's labels (KEY=VALUE), which a collector may require.
    runner_labels: tuple[str, ...] = ()
    audit_retention_days: float = 365.0  # housekeeping removes older audit rows (server/audit/)

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None


def _parse_int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _parse_float(name: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo:g} and {hi:g}, got {value:g}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def _parse_host(name: str, raw: str) -> str:
    host = raw.strip()
    if not host:
        raise SettingsError(f"{name} must not be empty")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not all(part and len(part) < 64 for part in host.split(".")) or len(host) > 253:
            raise SettingsError(f"{name} must be an IP address or host name, got {raw!r}") from None
    return host


def _parse_database_url(name: str, raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgres://")) and "=" not in raw:
        raise SettingsError(
            f"{name} must be a PostgreSQL URL (postgresql://user:pass@host:5432/db) or a libpq key=value string"
        )
    return raw


def _parse_log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"{name} must be DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


def _parse_event_loop(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in EVENT_LOOPS:
        raise SettingsError(f"{name} must be {', '.join(EVENT_LOOPS[:-1])} or {EVENT_LOOPS[-1]}, got {raw!r}")
    return value


def _parse_log_format(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"text", "json"}:
        raise SettingsError(f"{name} must be text or json, got {raw!r}")
    return value


def _parse_api_keys(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    keys = []
    for entry in raw.split(","):
        role, sep, key = entry.strip().partition(":")
        if not sep or role not in GRANTABLE_ROLES:
            # Never echo the value: it holds keys.
            raise SettingsError(f"{name} must be a comma-separated list of ROLE:KEY (ROLE: read, trigger or admin)")
        if len(key) < 20 or not key.isascii() or not key.isprintable() or " " in key:
            raise SettingsError(f"{name}: each key must be at least 20 printable ASCII characters without spaces")
        keys.append((role, key))
    return tuple(keys)


def _parse_origins(name: str, raw: str) -> tuple[str, ...]:
    origins = []
    for entry in raw.split(","):
        origin = entry.strip().rstrip("/")
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or any(c in rest for c in "/?#*@ "):
            # '*' is refused on purpose: CORS forbids a wildcard with credentials.
            raise SettingsError(
                f"{name} must be a comma-separated list of origins like https://host[:port], got {entry!r}"
            )
        origins.append(origin)
    return tuple(origins)


def _parse_redis_url(name: str, raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{name} must be a redis://, rediss:// or unix:// URL")  # no echo: may hold a password
    return raw


def _parse_networks(name: str, raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in raw.split(","):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise SettingsError(f"{name} must list addresses or networks (10.0.0.0/8), got {entry!r}") from None
    return tuple(networks)


def _parse_secret(name: str, raw: str) -> str:
    if len(raw.encode()) < 32:
        raise SettingsError(f"{name} must be at least 32 bytes (HS256 needs a key as long as its hash)")
    return raw


def _parse_text(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 500 or not value.isprintable():
        raise SettingsError(f"{name} must be 1-500 printable characters, got {raw!r}")
    return value


def _parse_existing_file(name: str, raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SettingsError(f"{name} must name an existing file, got {raw!r}")
    return path


def _parse_runner_id(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 200 or not value.isprintable():
        raise SettingsError(f"{name} must be 1-200 printable characters, got {raw!r}")
    return value


def _parse_runner_labels(name: str, raw: str) -> tuple[str, ...]:
    labels = sorted({part.strip() for part in raw.split(",") if part.strip()})
    bad = [label for label in labels if not RUNNER_LABEL.match(label)]
    if bad or len(labels) > 50:
        raise SettingsError(f"{name} must be up to 50 comma-separated KEY=VALUE labels such as site=hq, got {raw!r}")
    return tuple(labels)


def _webhook_setting(parse: Any) -> Any:
    def parse_setting(name: str, raw: str) -> Any:
        try:
            return parse(name, raw)
        except WebhookConfigError as exc:
            raise SettingsError(str(exc)) from None

    return parse_setting


# setting name -> parser(env name, raw string) -> value
_PARSERS: dict[str, Any] = {
    "host": _parse_host,
    "port": lambda n, r: _parse_int(n, r, 1, 65535),
    "database_url": _parse_database_url,
    "data_dir": lambda n, r: Path(r).expanduser(),
    "collectors_file": _parse_existing_file,
    "run_collectors": _parse_bool,
    "runner_concurrency": lambda n, r: _parse_int(n, r, 1, 256),
    "runner_id": _parse_runner_id,
    "runner_poll_interval": lambda n, r: _parse_float(n, r, 0.05, 60),
    "watchdog_timeout": lambda n, r: _parse_float(n, r, 1, 7 * 24 * 3600),
    "cancel_grace_period": lambda n, r: _parse_float(n, r, 0, 600),
    "max_body_bytes": lambda n, r: _parse_int(n, r, 1024, 64 * 1024 * 1024),
    "db_pool_min": lambda n, r: _parse_int(n, r, 0, 100),
    "db_pool_max": lambda n, r: _parse_int(n, r, 1, 1000),
    "log_level": _parse_log_level,
    "log_format": _parse_log_format,
    "metrics_public": _parse_bool,
    "api_keys": _parse_api_keys,
    "jwt_secret": _parse_secret,
    "jwt_public_key_file": _parse_existing_file,
    "jwt_issuer": _parse_text,
    "jwt_audience": _parse_text,
    "jwt_role_claim": _parse_text,
    "allow_insecure": _parse_bool,
    "cors_origins": _parse_origins,
    "rate_limit_per_minute": lambda n, r: _parse_int(n, r, 0, 1_000_000),
    "redis_url": _parse_redis_url,
    "trusted_proxies": _parse_networks,
    "tls_cert": _parse_existing_file,
    "tls_key": _parse_existing_file,
    "shutdown_timeout": lambda n, r: _parse_float(n, r, 0, 600),
    "webhooks": _webhook_setting(parse_declared_webhooks),
    "webhook_retry_schedule": _webhook_setting(parse_retry_schedule),
    "webhook_timeout": lambda n, r: _parse_float(n, r, 0.1, 300),
    "webhook_allow_private": _parse_bool,
    "webhook_poll_interval": lambda n, r: _parse_float(n, r, 0.05, 60),
    "webhook_disable_after": lambda n, r: _parse_float(n, r, 1, 365 * 24 * 3600),
    "webhook_concurrency": lambda n, r: _parse_int(n, r, 1, 256),
    "workers": lambda n, r: _parse_int(n, r, 1, 64),
    "loop": _parse_event_loop,
    "stream_heartbeat": lambda n, r: _parse_float(n, r, 0.05, 3600),
    "stream_retry_ms": lambda n, r: _parse_int(n, r, 100, 600_000),
    "stream_outbox_limit": lambda n, r: _parse_int(n, r, 1, 100_000),
    "stream_send_timeout": lambda n, r: _parse_float(n, r, 0.1, 3600),
    "ws_max_message_bytes": lambda n, r: _parse_int(n, r, 256, 1024 * 1024),
    "ws_max_subscriptions": lambda n, r: _parse_int(n, r, 1, 10_000),
    "ws_max_bad_messages": lambda n, r: _parse_int(n, r, 1, 1000),
    "ws_compression": _parse_bool,
    "listener_ping_interval": lambda n, r: _parse_float(n, r, 0.1, 3600),
    "listener_max_backoff": lambda n, r: _parse_float(n, r, 0.1, 3600),
    "state_cache_size": lambda n, r: _parse_int(n, r, 10, 1_000_000),
    "run_schedules": _parse_bool,
    "schedule_poll_interval": lambda n, r: _parse_float(n, r, 0.05, 60),
    "schedule_misfire_grace": lambda n, r: _parse_float(n, r, 1, 7 * 24 * 3600),
    "job_log_max_lines": lambda n, r: _parse_int(n, r, 10, 10_000_000),
    "job_log_max_bytes": lambda n, r: _parse_int(n, r, 64 * 1024, 1024 * 1024 * 1024),
    "log_retention_days": lambda n, r: _parse_float(n, r, 0.01, 36_500),
    "unclaimable_timeout": lambda n, r: _parse_float(n, r, 10, 30 * 24 * 3600),
    "health_interval": lambda n, r: _parse_float(n, r, 0.05, 3600),
    "cross_vendor_by_default": _parse_bool,
    "vendor_retries": lambda n, r: _parse_int(n, r, 0, 100),
    "runner_labels": _parse_runner_labels,
    "audit_retention_days": lambda n, r: _parse_float(n, r, 1, 36_500),
}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``COLLECTOR_HUB_*`` variables, then CLI overrides (already typed,
    ``None`` meaning "not given"). Raises :class:`SettingsError` on the first bad value."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field, parse in _PARSERS.items():
        raw = environ.get(env_name(field))
        if raw is not None and raw != "":
            values[field] = parse(env_name(field), raw)
    for field, value in overrides.items():
        if field not in _PARSERS:
            raise SettingsError(f"unknown setting {field!r}")
        if value is not None:
            values[field] = _PARSERS[field](f"--{field.replace('_', '-')}", str(value))
    try:
        values["variances"] = load_variance_settings(environ, PLATFORMS)
    except VarianceSettingsError as exc:
        raise SettingsError(str(exc)) from None
    settings = Settings(**values)
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SettingsError(f"{env_name('tls_cert')} and {env_name('tls_key')} (--tls-cert, --tls-key) go together")
    if settings.db_pool_min > settings.db_pool_max:
        raise SettingsError(
            f"{env_name('db_pool_min')} ({settings.db_pool_min}) must not exceed "
            f"{env_name('db_pool_max')} ({settings.db_pool_max})"
        )
    try:
        check_declared(env_name("webhooks"), settings.webhooks, allow_private=settings.webhook_allow_private)
    except WebhookConfigError as exc:
        raise SettingsError(str(exc)) from None
    return settings
