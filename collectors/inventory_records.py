"""What a device looks like in the inventory, whichever vendor reported it: one copy of the
source names, the platform vocabulary and the host-name matching rule, shared by the
collectors that write the inventory and the server that reads it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# The vendor collectors that fill the inventory (each is also a collector name).
SOURCES = ("ninja", "threatlocker")
# A normalized platform, so one filter works across vendors; the vendor's own class is kept in
# ``device_class``.
PLATFORMS = ("windows", "macos", "linux", "ios", "android", "virtualization", "network", "cloud", "other")
MAX_TEXT_CHARS = 500
MAX_ADDRESSES = 64
# What an IPv4 address is made of (ipaddress accepts nothing else without a ':', which IPv6 needs)
_IPV4_CHARACTERS = frozenset("0123456789.")


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


@dataclasses.dataclass(frozen=True, slots=True)
class VendorRecord:
    """One device of a vendor's page as the vendor sent it, not yet normalized.

    ``raw_json`` is the record's JSON text as it came in the vendor's answer; ``digest`` (see
    :func:`record_digest`) stands for the :class:`DeviceRecord` that ``normalize()`` makes of
    it: equal digests, equal records. A writer that finds the digest it stored last time never
    calls ``normalize()`` (collectors/inventory_store.py)."""

    vendor_id: str
    raw_json: str
    digest: bytes
    normalize: Callable[[], DeviceRecord]


def code_fingerprint(*files: str | None) -> bytes:
    """A digest of the source of the modules that turn a vendor's record into what is stored
    (the vendor's module, this one, the writer's): a new version of any of them gives new
    record digests, so the next run writes every record in full again. A file that cannot be
    read gives a digest of this process alone: records are then always written in full."""
    digest = hashlib.blake2b(digest_size=32)
    for file in files:
        try:
            digest.update(Path(file or "").read_bytes())
        except OSError:
            digest.update(os.urandom(32))
    return digest.digest()


def record_digest(code: bytes, raw_json: str, context: str | None = None) -> bytes:
    """What identifies the record that ``code`` (a :func:`code_fingerprint`) makes of a vendor
    record whose JSON text is ``raw_json`` given ``context`` (what else it is normalized with,
    e.g. the name of its organization from another listing): 16 bytes of keyed BLAKE2b."""
    prefix = "\x00" if context is None else f"\x01{context}\x00"
    return hashlib.blake2b((prefix + raw_json).encode("utf-8", "surrogatepass"), digest_size=16, key=code).digest()


def host_key(*names: str | None) -> str | None:
    """The name two vendors' records of one machine share: the first usable name, lower case,
    without its domain (``WS-01.corp.example`` and ``ws-01`` match). IP addresses are not names."""
    for name in names:
        if not name:
            continue
        candidate = name.strip().lower()
        if not candidate:
            continue
        if ":" in candidate or _IPV4_CHARACTERS.issuperset(candidate):
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
