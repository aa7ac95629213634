"""Variances as the JSON of ES Inventory Hub's dashboard API (its paths and top-level keys),
answered rightly (docs/VARIANCES.md lists where it differs)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from collectors.variance_settings import OPEN_STATUS, VARIANCE_TYPES
from server.api.timestamps import format_timestamp

Row = Mapping[str, Any]

# The dashboard's block of each type, and what to do about one.
DASHBOARD_KEYS = {
    "MISSING_NINJA": "missing_in_ninja",
    "MISSING_THREATLOCKER": "missing_in_threatlocker",
    "DUPLICATE_TL": "threatlocker_duplicates",
    "DUPLICATE_NINJA": "ninja_duplicates",
    "SPARE_MISMATCH": "devices_that_should_not_have_threatlocker",
    "DISPLAY_NAME_MISMATCH": "display_name_mismatches",
    "ORG_MISMATCH": "organization_mismatches",
}
ACTIONS = {
    "MISSING_NINJA": "Install the NinjaOne agent, or remove the computer from ThreatLocker",
    "MISSING_THREATLOCKER": "Install the ThreatLocker agent, or mark the device spare in NinjaOne",
    "DUPLICATE_TL": "Remove the stale ThreatLocker computer(s) of this host",
    "DUPLICATE_NINJA": "Remove the stale NinjaOne device(s) of this host",
    "SPARE_MISMATCH": "Remove ThreatLocker from the spare device, or put it back into use in NinjaOne",
    "DISPLAY_NAME_MISMATCH": "Give the device the same name in both consoles",
    "ORG_MISMATCH": "Move the device to the right organization, or map the two organizations",
}
# The side an operator acts on for each type.
VENDOR = {
    "MISSING_NINJA": "ThreatLocker",
    "DUPLICATE_TL": "ThreatLocker",
    "MISSING_THREATLOCKER": "Ninja",
    "DUPLICATE_NINJA": "Ninja",
    "SPARE_MISMATCH": "ThreatLocker",
    "DISPLAY_NAME_MISMATCH": "ThreatLocker",
    "ORG_MISMATCH": "ThreatLocker",
}
UNKNOWN_ORGANIZATION = "Unknown"


def day(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date().isoformat()
    return value.isoformat()


def exception_json(row: Row) -> dict[str, Any]:
    """One variance, with ES Inventory Hub's keys and ours."""
    manual = row["status"] == "manually_fixed" or row["update_type"] is not None
    return {
        "id": row["id"],
        "date_found": day(row["first_seen"]),
        "type": row["type"],
        "hostname": row["hostname"],
        "subject_key": row["subject_key"],
        "organization": row["organization"],
        "details": row["details"],
        "resolved": row["status"] != OPEN_STATUS,
        "variance_status": row["status"],
        "first_seen": format_timestamp(row["first_seen"]),
        "last_seen": format_timestamp(row["last_seen"]),
        "note": row["note"],
        "reason": row["reason"],
        "expires_on": day(row["expires_on"]),
        "resolved_date": day(row["resolved_at"]),
        "resolved_by": row["resolved_by"],
        "manually_updated_at": format_timestamp(row["updated_at"]) if manual else None,
        "manually_updated_by": row["updated_by"] if manual else None,
        "update_type": row["update_type"],
        "old_value": row["old_value"],
        "new_value": row["new_value"],
        "updated_by": row["updated_by"],
        "updated_at": format_timestamp(row["updated_at"]),
    }


def counts_by_type(rows: Iterable[Row]) -> dict[str, int]:
    found = dict.fromkeys(VARIANCE_TYPES, 0)
    for row in rows:
        found[row["type"]] += 1
    return found


def summary_json(rows: Sequence[Row]) -> dict[str, Any]:
    unresolved = sum(1 for r in rows if r["status"] == OPEN_STATUS)
    return {"total_exceptions": len(rows), "unresolved_count": unresolved, "resolved_count": len(rows) - unresolved}


def by_type_json(rows: Iterable[Row]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {t: [] for t in VARIANCE_TYPES}
    for row in rows:
        grouped[row["type"]].append(
            {
                "id": row["id"],
                "hostname": row["hostname"],
                "organization": row["organization"],
                "details": row["details"],
                "resolved": row["status"] != OPEN_STATUS,
                "variance_status": row["status"],
            }
        )
    return grouped


def _entry(row: Row) -> dict[str, Any]:
    details = row["details"]
    entry = {
        "id": row["id"],
        "hostname": row["hostname"],
        "vendor": VENDOR[row["type"]],
        "display_name": details.get("ninja_display_name") or details.get("tl_display_name") or row["hostname"],
        "organization": row["organization"] or UNKNOWN_ORGANIZATION,
        "billing_status": details.get("ninja_billing_status"),
        "action": ACTIONS[row["type"]],
        "variance_status": row["status"],
    }
    if row["type"] == "DISPLAY_NAME_MISMATCH":
        entry.update(
            ninja_display_name=details.get("ninja_display_name"),
            threatlocker_display_name=details.get("tl_display_name"),
            ninja_hostname=details.get("ninja_hostname"),
            threatlocker_hostname=details.get("tl_hostname"),
        )
    return entry


def blocks_json(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """The dashboard's blocks, one per type: ``{total_count, by_organization}``."""
    blocks: dict[str, dict[str, Any]] = {
        key: {"total_count": 0, "by_organization": {}} for key in DASHBOARD_KEYS.values()
    }
    for row in rows:
        block = blocks[DASHBOARD_KEYS[row["type"]]]
        entry = _entry(row)
        block["total_count"] += 1
        block["by_organization"].setdefault(entry["organization"], []).append(entry)
    return blocks


def freshness(collected: dt.datetime | None, today: dt.date) -> dict[str, Any]:
    """How old a source's data is: current (today), yesterday, stale (up to 3 days), very_stale."""
    if collected is None:
        return {
            "latest_date": None,
            "freshness_status": "no_data",
            "freshness_message": "No complete run yet",
            "days_old": None,
        }
    days_old = (today - collected.astimezone(dt.UTC).date()).days
    status = (
        "current" if days_old <= 0 else "yesterday" if days_old == 1 else "stale" if days_old <= 3 else "very_stale"
    )
    message = "Collected today" if days_old <= 0 else f"Collected {days_old} day{'s' if days_old > 1 else ''} ago"
    return {
        "latest_date": day(collected),
        "freshness_status": status,
        "freshness_message": message,
        "days_old": max(days_old, 0),
    }


def data_status(check: Row | None, today: dt.date) -> dict[str, Any]:
    """Whether the variances are current: the last complete check ran today or yesterday."""
    if check is None:
        return {"status": "out_of_sync", "message": "No complete cross-vendor check has run yet", "latest_date": None}
    latest = check["finished_at"].astimezone(dt.UTC).date()
    days_old = (today - latest).days
    if days_old <= 1:
        return {"status": "current", "message": "The variances are current", "latest_date": latest.isoformat()}
    return {"status": "stale_data", "message": f"Data is {days_old} days old", "latest_date": latest.isoformat()}


def collection_info(check: Row | None, today: dt.date) -> dict[str, Any]:
    if check is None:
        return {
            "last_collection": None,
            "ninja_collected": None,
            "threatlocker_collected": None,
            "data_freshness": "stale",
        }
    return {
        "last_collection": format_timestamp(check["finished_at"]),
        "ninja_collected": format_timestamp(check["ninja_collected"]),
        "threatlocker_collected": format_timestamp(check["threatlocker_collected"]),
        "data_freshness": (data_status(check, today)["status"] == "current" and "current") or "stale",
    }
