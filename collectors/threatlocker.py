"""The ThreatLocker collector: computers from the ThreatLocker Portal API into the inventory.

``POST {THREATLOCKER_BASE_URL}/Computer/ComputerGetByAllParameters`` page by page
(``pageNumber`` from 1), the raw API token in ``Authorization`` (no ``Bearer``), and
``ManagedOrganizationId`` when ``THREATLOCKER_ORGANIZATION_ID`` is set. The answer is a bare
JSON array; the totals come from whichever the answer carries: a JSON ``pagination`` header,
separate ``totalItems``/``totalPages`` headers, or ``totalRows`` on each row. A short page, or
the last page by the totals, ends the listing. Settings: docs/COLLECTORS.md.

    python -m collectors.threatlocker            # a run (started by a runner)
    python -m collectors.threatlocker --check    # test credentials and connectivity
"""

from __future__ import annotations

import dataclasses
import email.message
import functools
import json
import sys
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from collectors import inventory_records, inventory_store
from collectors.inventory_records import (
    DeviceRecord,
    VendorRecord,
    clean_text,
    code_fingerprint,
    iso_timestamp,
    record_digest,
)
from collectors.inventory_run import Details, Page, vendor_main
from collectors.vendor_connection import HttpSession
from collectors.vendor_http import VendorAuthError, VendorClient, VendorMalformed, VendorResponse
from collectors.vendor_json import JsonArray
from collectors.vendor_settings import (
    VENDOR_CREDENTIALS,
    Environment,
    HttpSettings,
    VendorSettingsError,
    missing_credentials,
)

NAME = "threatlocker"
VENDOR = "ThreatLocker"
CREDENTIAL_VARIABLES = VENDOR_CREDENTIALS["threatlocker"]
LIST_PATH = "/Computer/ComputerGetByAllParameters"
MAX_PAGE_SIZE = 500  # what known clients clamp at
ANY_GUID = "00000000-0000-0000-0000-000000000000"
OS_TYPES = {1: ("windows", "Windows"), 2: ("macos", "macOS"), 3: ("linux", "Linux")}
# The code that makes a stored record of a ThreatLocker computer: part of each record's digest.
NORMALIZING_CODE = code_fingerprint(__file__, inventory_records.__file__, inventory_store.__file__)


@dataclasses.dataclass(frozen=True)
class ThreatLockerConfig:
    base_url: str
    api_token: str = dataclasses.field(repr=False)
    organization_id: str | None = None
    page_size: int = MAX_PAGE_SIZE
    http: HttpSettings = dataclasses.field(default_factory=HttpSettings)

    @property
    def secrets(self) -> list[str]:
        return [self.api_token]


def load_config(environ: Mapping[str, str]) -> ThreatLockerConfig:
    env = Environment(environ, "THREATLOCKER")
    missing = [name for name in CREDENTIAL_VARIABLES if not environ.get(name, "").strip()]
    if missing:
        raise missing_credentials(NAME, missing)
    organization = env.raw("ORGANIZATION_ID") or None
    if organization is not None and (len(organization) > 100 or not organization.replace("-", "").isalnum()):
        raise VendorSettingsError(
            f"THREATLOCKER_ORGANIZATION_ID must be an organization id (a GUID), got {organization!r}"
        )
    token = env.raw("API_TOKEN")
    if not token.isprintable():
        raise VendorSettingsError("THREATLOCKER_API_TOKEN must be printable text")
    return ThreatLockerConfig(
        base_url=env.base_url("BASE_URL", "https://portalapi.g.threatlocker.com/portalapi"),
        api_token=token,
        organization_id=organization,
        page_size=env.integer("PAGE_SIZE", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        http=env.http(HttpSettings(requests_per_minute=100)),
    )


def list_body(page_number: int, page_size: int) -> dict[str, Any]:
    """The ``ComputerParameterDto`` of one page: every computer, by name."""
    return {
        "pageSize": page_size,
        "pageNumber": page_number,
        "searchText": "",
        "orderBy": "computername",
        "isAscending": True,
        "childOrganizations": False,
        "showLastCheckIn": True,
        "showDeleted": False,
        "computerGroup": ANY_GUID,
        "computerId": ANY_GUID,
        "searchBy": 1,
        "action": "",
        "kindOfAction": "",
        "threatlockerVersion": "All",
        "isExport": False,
    }


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def read_totals(headers: email.message.Message, rows: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """(total items, total pages) from whichever form the answer carries, else (None, None)."""
    raw = headers.get("pagination")
    if raw:
        try:
            pagination = json.loads(raw)
        except ValueError:
            pagination = None
        if isinstance(pagination, dict):
            items, pages = _count(pagination.get("totalItems")), _count(pagination.get("totalPages"))
            if items is not None or pages is not None:
                return items, pages
    items, pages = _count(headers.get("totalItems")), _count(headers.get("totalPages"))
    if items is None and rows:
        items = _count(rows[0].get("totalRows"))
    return items, pages


def _computer_id(raw: dict[str, Any]) -> str:
    computer_id = clean_text(raw.get("computerId"))
    if computer_id is None:
        raise VendorMalformed("ThreatLocker sent a computer without a computerId")
    return computer_id.lower()


def normalize_computer(raw: dict[str, Any]) -> DeviceRecord:
    computer_id = _computer_id(raw)
    os_type = raw.get("osType")
    platform, os_name = OS_TYPES.get(os_type, ("other", None)) if isinstance(os_type, int) else ("other", None)
    return DeviceRecord(
        vendor_id=computer_id,
        raw=raw,
        organization_id=clean_text(raw.get("organizationId")),
        display_name=clean_text(raw.get("computerName")),
        host_name=clean_text(raw.get("hostname")) or clean_text(raw.get("computerName")),
        platform=platform,
        os_name=os_name,
        last_contact_at=iso_timestamp(raw.get("lastCheckin")),
    )


def computer_seen(raw: dict[str, Any], raw_json: str) -> VendorRecord:
    """A computer as it came (``raw_json`` is its text), normalized only if it is written."""
    return VendorRecord(
        vendor_id=_computer_id(raw),
        raw_json=raw_json,
        digest=record_digest(NORMALIZING_CODE, raw_json),
        normalize=functools.partial(normalize_computer, raw),
    )


class ThreatLockerSource:
    vendor = VENDOR
    noun = "computers"
    has_details = False

    def __init__(self, config: ThreatLockerConfig, session: HttpSession) -> None:
        self.config = config
        self.client = VendorClient(VENDOR, config.base_url, config.http, session, config.secrets)

    async def list_page(self, page_number: int, page_size: int) -> VendorResponse:
        headers = {"Authorization": self.config.api_token, "Accept": "application/json"}
        if self.config.organization_id:
            headers["ManagedOrganizationId"] = self.config.organization_id
        try:
            body = list_body(page_number, page_size)
            resp = await self.client.request("POST", LIST_PATH, json_body=body, headers=headers)
        except VendorAuthError as exc:
            raise VendorAuthError(
                f"ThreatLocker rejected the API token (HTTP {exc.status})"
                + (" or its access to THREATLOCKER_ORGANIZATION_ID" if self.config.organization_id else ""),
                exc.status,
            ) from None
        if not isinstance(resp.body, JsonArray) or not all(isinstance(row, dict) for row in resp.body):
            raise VendorMalformed(f"ThreatLocker's answer to POST {LIST_PATH} is not a JSON array of objects")
        return resp

    async def pages(self) -> AsyncGenerator[Page, None]:
        page_number = 1
        previous_first: Any = None
        while True:
            resp = await self.list_page(page_number, self.config.page_size)
            rows: JsonArray = resp.body
            # A server that ignored pageNumber would answer the first page forever.
            first = rows[0].get("computerId") if rows else None
            if first is not None and first == previous_first:
                raise VendorMalformed(
                    f"ThreatLocker's paging did not advance (page {page_number} repeats the one before)"
                )
            previous_first = first
            total_items, total_pages = read_totals(resp.headers, rows)
            pairs = zip(rows, rows.texts, strict=True)
            records = [computer_seen(row, text) for row, text in pairs if row.get("isDeleted") is not True]
            yield Page(records, total_items)
            if len(rows) < self.config.page_size or (total_pages is not None and page_number >= total_pages):
                return
            page_number += 1

    async def details(self) -> AsyncGenerator[Details, None]:
        return
        yield  # no second phase for ThreatLocker


async def check(config: ThreatLockerConfig, session: HttpSession) -> str:
    """Credentials and connectivity: the first page of one computer, and the total."""
    resp = await ThreatLockerSource(config, session).list_page(1, 1)
    total, _ = read_totals(resp.headers, resp.body)
    found = f"{total:,} computers" if total is not None else ("computers readable" if resp.body else "no computers")
    org = f" (organization {config.organization_id})" if config.organization_id else ""
    return f"ThreatLocker at {config.base_url}{org}: API token accepted; {found}"


def main(argv: list[str] | None = None) -> int:
    return vendor_main(NAME, load_config, ThreatLockerSource, check, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
