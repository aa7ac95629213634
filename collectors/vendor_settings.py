"""Reading a vendor collector's settings from its environment.

A vendor collector runs as its own process; the runner gives it the server's environment
without ``COLLECTOR_HUB_*`` and adds the collector's ``env`` table from the collectors file.
So its settings are plain ``NINJA_*`` / ``THREATLOCKER_*`` variables, read once at start and
validated here with a message that names the variable (never its value when it is a secret).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping, Sequence

# The vendor collectors, by name, and the variables their credentials are in. A collector is
# one of them when its command runs ``python -m collectors.NAME``.
VENDOR_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "ninja": ("NINJA_CLIENT_ID", "NINJA_CLIENT_SECRET"),
    "threatlocker": ("THREATLOCKER_BASE_URL", "THREATLOCKER_API_TOKEN"),
}


def vendor_of(command: Sequence[str]) -> str | None:
    """``ninja`` for a command ``python -m collectors.ninja`` (any interpreter); else None."""
    if "-m" not in command[:-1]:
        return None
    module = command[list(command).index("-m") + 1]
    name = module.removeprefix("collectors.")
    return name if module.startswith("collectors.") and name in VENDOR_CREDENTIALS else None


def credentials_missing(command: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The credential variables a vendor collector's run would lack in ``environ``; [] for a
    collector that is not a vendor's, or one with all of them."""
    vendor = vendor_of(command)
    if vendor is None:
        return []
    return [name for name in VENDOR_CREDENTIALS[vendor] if not environ.get(name, "").strip()]


class VendorSettingsError(ValueError):
    """A vendor variable is missing or has a value the collector cannot use."""


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    """How a vendor client talks HTTP; the same knobs for every vendor."""

    timeout: float = 60.0  # seconds for one request, connect to last byte
    max_retries: int = 5  # further attempts after the first, on 408/429/5xx/timeouts
    backoff: float = 2.0  # seconds before the first retry; doubles, with full jitter
    max_backoff: float = 60.0
    max_retry_after: float = 300.0  # a longer Retry-After fails the run instead of waiting
    requests_per_minute: int = 100  # client-side limit; 0 turns it off


class Environment:
    """Typed reads of one collector's variables, all named ``PREFIX_NAME``."""

    def __init__(self, environ: Mapping[str, str], prefix: str) -> None:
        self._environ = environ
        self._prefix = prefix

    def name(self, key: str) -> str:
        return f"{self._prefix}_{key}"

    def raw(self, key: str) -> str:
        return self._environ.get(self.name(key), "").strip()

    def text(self, key: str, default: str = "") -> str:
        return self.raw(key) or default

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        raw = self.raw(key)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise VendorSettingsError(f"{self.name(key)} must be an integer, got {raw!r}") from None
        if not lo <= value <= hi:
            raise VendorSettingsError(f"{self.name(key)} must be between {lo} and {hi}, got {value}")
        return value

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        raw = self.raw(key)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise VendorSettingsError(f"{self.name(key)} must be a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise VendorSettingsError(f"{self.name(key)} must be between {lo:g} and {hi:g}, got {value:g}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.raw(key).lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise VendorSettingsError(f"{self.name(key)} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")

    def base_url(self, key: str, default: str = "") -> str:
        """An ``https://`` (or, for local fakes, ``http://``) URL without query or fragment,
        returned without a trailing slash."""
        raw = self.raw(key) or default
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
            raise VendorSettingsError(
                f"{self.name(key)} must be an https:// URL such as {default or 'https://host/path'}"
            )
        if parts.username or parts.password:
            raise VendorSettingsError(f"{self.name(key)} must not carry credentials in the URL")
        return raw.rstrip("/")

    def http(self, defaults: HttpSettings) -> HttpSettings:
        return HttpSettings(
            timeout=self.number("TIMEOUT", defaults.timeout, 0.1, 3600),
            max_retries=self.integer("MAX_RETRIES", defaults.max_retries, 0, 20),
            backoff=self.number("RETRY_BACKOFF", defaults.backoff, 0, 600),
            max_backoff=self.number("MAX_BACKOFF", defaults.max_backoff, 0, 3600),
            max_retry_after=self.number("MAX_RETRY_AFTER", defaults.max_retry_after, 0, 86400),
            requests_per_minute=self.integer("REQUESTS_PER_MINUTE", defaults.requests_per_minute, 0, 1_000_000),
        )


def missing_credentials(collector: str, names: list[str]) -> VendorSettingsError:
    """The error a run without credentials has always given."""
    return VendorSettingsError(
        f"credentials not configured (set {' and '.join(names)} in the environment,"
        " or in the collector's env table in COLLECTOR_HUB_COLLECTORS_FILE)"
    )
