"""What a device looks like in the inventory, whichever vendor reported it: one copy of the
source names, the platform vocabulary and the host-name matching rule, shared by the
collectors that write the inventory and the server that reads it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Mapping
from typing import Any

# The vendor collectors that fill the inventory (each is also a collector name).
SOURCES = ("ninja", "threatlocker")
# A normalized platform, so one filter works across vendors; the vendor's own class is kept in
# ``device_class``.
PLATFORMS = ("windows", "macos", "linux", "ios", "android", "virtualization", "network", "cloud", "other")
MAX_TEXT_CHARS = 500
MAX_ADDRESSES = 64


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device as a vendor reported it, normalized; ``raw`` is the vendor's record as sent."""

    vendor_id: str
    raw: Mapping[str, Any]
    organization_id: str | None = None
    organization_name: str | None = None
    display_name: str | None = None
    host_name: str | None = None
    dns_name: str | None = None
    platform: str = "other"
    device_class: str | None = None
    os_name: str | None = None
    serial_number: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    ip_addresses: tuple[str, ...] = ()
    mac_addresses: tuple[str, ...] = ()
    online: bool | None = None
    last_contact_at: dt.datetime | None = None

    @property
    def host_key(self) -> str | None:
        return host_key(self.host_name, self.dns_name, self.display_name)


def host_key(*names: str | None) -> str | None:
    """The name two vendors' records of one machine share: the first usable name, lower case,
    without its domain (``WS-01.corp.example`` and ``ws-01`` match). IP addresses are not names."""
    for name in names:
        if not name:
            continue
        candidate = name.strip().lower()
        if not candidate:
            continue
        try:
            ipaddress.ip_address(candidate)
            continue
        except ValueError:
            pass
        short = candidate.split(".", 1)[0].strip()
        if short:
            return short[:MAX_TEXT_CHARS]
    return None


def clean_text(value: Any) -> str | None:
    """A vendor string as the database takes it: None for absent/empty/non-strings, no NUL,
    bounded length."""
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    if not text:
        return None
    return text.encode("utf-8", "replace").decode("utf-8")[:MAX_TEXT_CHARS]


def clean_list(value: Any) -> tuple[str, ...]:
    """A vendor list of strings (addresses), cleaned and bounded; anything else is empty."""
    if not isinstance(value, list):
        return ()
    cleaned = (clean_text(v) for v in value[:MAX_ADDRESSES])
    return tuple(v for v in cleaned if v)


def epoch_seconds(value: Any) -> dt.datetime | None:
    """NinjaOne's timestamps: epoch seconds as a (floating-point) number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_timestamp(value: Any) -> dt.datetime | None:
    """An ISO 8601 timestamp string; without a zone it is taken as UTC."""
    text = clean_text(value)
    if text is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
