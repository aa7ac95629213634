"""Variances as a CSV or XLSX file: ES Inventory Hub's columns, plus first and last seen
(docs/VARIANCES.md). Built off the event loop (the caller runs these in a thread)."""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from collectors.variance_settings import OPEN_STATUS, VARIANCE_TYPES
from server.api.timestamps import format_timestamp

COLUMNS = (
    "ID",
    "Date Found",
    "Type",
    "Hostname",
    "Resolved",
    "Resolved Date",
    "Resolved By",
    "Manually Updated At",
    "Manually Updated By",
    "Variance Status",
    "Update Type",
    "Organization",
    "Details",
    "First Seen",
    "Last Seen",
)
EXCEL_COLUMNS = tuple(c for c in COLUMNS if c != "Details")
# A spreadsheet runs a cell that starts with one of these as a formula: a vendor's host name
# must not (CSV injection), so such a value gets a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _day(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).date().isoformat() if value else ""


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _values(row: Mapping[str, Any]) -> dict[str, Any]:
    manual = row["status"] == "manually_fixed" or row["update_type"] is not None
    return {
        "ID": row["id"],
        "Date Found": _day(row["first_seen"]),
        "Type": row["type"],
        "Hostname": _safe(row["hostname"]),
        "Resolved": "No" if row["status"] == OPEN_STATUS else "Yes",
        "Resolved Date": _day(row["resolved_at"]),
        "Resolved By": _safe(row["resolved_by"] or ""),
        "Manually Updated At": (format_timestamp(row["updated_at"]) or "") if manual else "",
        "Manually Updated By": _safe(row["updated_by"] or "") if manual else "",
        "Variance Status": row["status"],
        "Update Type": _safe(row["update_type"] or ""),
        "Organization": _safe(row["organization"] or "Unknown"),
        "Details": _safe(json.dumps(row["details"], sort_keys=True)),
        "First Seen": format_timestamp(row["first_seen"]),
        "Last Seen": format_timestamp(row["last_seen"]),
    }


def to_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(_values(row))
    return out.getvalue().encode("utf-8-sig")  # the BOM: spreadsheets then read UTF-8


def to_xlsx(rows: Sequence[Mapping[str, Any]], report_date: str, generated_at: str) -> bytes:
    # openpyxl is imported on the first XLSX export, not when the server starts (the import
    # is about 0.2 s of CPU, a sixth of what starting `serve` costs).
    book = importlib.import_module("openpyxl").Workbook(write_only=True)
    summary = book.create_sheet("Summary")
    unresolved = sum(1 for r in rows if r["status"] == OPEN_STATUS)
    summary.append(["Report date", report_date])
    summary.append(["Generated at", generated_at])
    summary.append(["Total exceptions", len(rows)])
    summary.append(["Unresolved", unresolved])
    summary.append(["Resolved", len(rows) - unresolved])
    summary.append([])
    summary.append(["Type", "Count"])
    for variance_type in VARIANCE_TYPES:
        summary.append([variance_type, sum(1 for r in rows if r["type"] == variance_type)])
    sheet = book.create_sheet("Exceptions")
    sheet.append(list(EXCEL_COLUMNS))
    for row in rows:
        values = _values(row)
        sheet.append([values[c] for c in EXCEL_COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
