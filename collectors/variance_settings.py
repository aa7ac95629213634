"""The settings of the cross-vendor checks, and the variance vocabulary (docs/VARIANCES.md).

The checks run as a collector process, whose environment the runner builds without the
server's own ``COLLECTOR_HUB_*`` variables; so these settings have names of their own,
``CROSS_VENDOR_*``, read by the collector from its environment and by the server
(``server/settings.py``, which validates them at start with this same parser). A collectors
file may also set them for the checks alone (``[collectors.cross-vendor-checks] env``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# What a variance is about, and where it stands.
VARIANCE_TYPES = (
    "MISSING_NINJA",
    "MISSING_THREATLOCKER",
    "DUPLICATE_TL",
    "DUPLICATE_NINJA",
    "SPARE_MISMATCH",
    "DISPLAY_NAME_MISMATCH",
    "ORG_MISMATCH",
)
VARIANCE_STATUSES = ("active", "resolved", "manually_fixed", "collector_verified", "accepted")
# Open: still to be worked through. Every other status counts as resolved in the reports.
OPEN_STATUS = "active"

ENV_NETBIOS_CUT = "CROSS_VENDOR_NETBIOS_CUT"
ENV_SPARE_PATTERN = "CROSS_VENDOR_SPARE_PATTERN"
ENV_SPARE_CLASSES = "CROSS_VENDOR_SPARE_DEVICE_CLASSES"
ENV_EXCLUDED_LOCATIONS = "CROSS_VENDOR_EXCLUDED_LOCATIONS"
ENV_AGENT_PLATFORMS = "CROSS_VENDOR_AGENT_PLATFORMS"
ENVIRONMENT_NAMES = (ENV_NETBIOS_CUT, ENV_SPARE_PATTERN, ENV_SPARE_CLASSES, ENV_EXCLUDED_LOCATIONS, ENV_AGENT_PLATFORMS)

MAX_SETTING_CHARS = 2000
MAX_LIST_ITEMS = 100


class VarianceSettingsError(ValueError):
    """A CROSS_VENDOR_* variable has a value the checks cannot use."""


@dataclasses.dataclass(frozen=True)
class VarianceSettings:
    # Cut host keys to 15 characters: NinjaOne's system names are NetBIOS names, which are.
    netbios_cut: bool = True
    # A NinjaOne device is spare when its display name or location contains this (any case);
    # empty: no device is spare by name.
    spare_pattern: str = "spare"
    # NinjaOne node classes that are always spare (e.g. VMWARE_VM_GUEST); none by default.
    spare_device_classes: tuple[str, ...] = ()
    # Locations (any case) whose spare devices are expected to keep the agent (a spare stock
    # kept ready): no SPARE_MISMATCH there.
    excluded_locations: tuple[str, ...] = ()
    # The platforms ThreatLocker's agent runs on: a NinjaOne device of another platform (a
    # switch, a phone) without the agent is no MISSING_THREATLOCKER.
    agent_platforms: tuple[str, ...] = ("windows", "macos", "linux")

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _text(name: str, raw: str) -> str:
    if len(raw) > MAX_SETTING_CHARS or "\x00" in raw:
        raise VarianceSettingsError(f"{name} must be at most {MAX_SETTING_CHARS} characters of text")
    return raw.strip()


def _list(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in _text(name, raw).split(",") if item.strip())
    if len(items) > MAX_LIST_ITEMS:
        raise VarianceSettingsError(f"{name} may list at most {MAX_LIST_ITEMS} values, got {len(items)}")
    return items


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise VarianceSettingsError(f"{name} must be true or false (1/0, yes/no, on/off), got {raw[:40]!r}")


def load_variance_settings(environ: Mapping[str, str], platforms: tuple[str, ...]) -> VarianceSettings:
    """The settings from ``CROSS_VENDOR_*`` variables; absent ones keep their defaults.
    ``platforms``: the inventory's platform vocabulary, which the agent platforms must use."""
    values: dict[str, Any] = {}
    if ENV_NETBIOS_CUT in environ:
        values["netbios_cut"] = _bool(ENV_NETBIOS_CUT, environ[ENV_NETBIOS_CUT])
    if ENV_SPARE_PATTERN in environ:
        values["spare_pattern"] = _text(ENV_SPARE_PATTERN, environ[ENV_SPARE_PATTERN])
    if ENV_SPARE_CLASSES in environ:
        values["spare_device_classes"] = _list(ENV_SPARE_CLASSES, environ[ENV_SPARE_CLASSES])
    if ENV_EXCLUDED_LOCATIONS in environ:
        values["excluded_locations"] = _list(ENV_EXCLUDED_LOCATIONS, environ[ENV_EXCLUDED_LOCATIONS])
    if ENV_AGENT_PLATFORMS in environ:
        chosen = _list(ENV_AGENT_PLATFORMS, environ[ENV_AGENT_PLATFORMS])
        unknown = [p for p in chosen if p not in platforms]
        if unknown:
            raise VarianceSettingsError(
                f"{ENV_AGENT_PLATFORMS} names unknown platforms {', '.join(unknown)}; platforms: {', '.join(platforms)}"
            )
        values["agent_platforms"] = chosen
    return VarianceSettings(**values)
