"""The NinjaOne collector: devices from the NinjaOne public API v2 into the inventory.

OAuth2 client credentials (``POST /ws/oauth/token``), then organizations and
``devices-detailed`` paged with ``pageSize``/``after`` (bare JSON arrays; a short page is the
last), then, unless ``NINJA_COMPUTER_SYSTEMS=0``, the ``computer-systems`` report (cursor
paging) for manufacturer, model and serial number. The token is refreshed shortly before it
expires and once on a 401. Settings: docs/COLLECTORS.md.

    python -m collectors.ninja            # a run (started by a runner)
    python -m collectors.ninja --check    # test credentials and connectivity, print what was found
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from collectors import inventory_records, inventory_store
from collectors.inventory_records import (
    DeviceRecord,
    VendorRecord,
    clean_list,
    clean_text,
    code_fingerprint,
    epoch_seconds,
    record_digest,
)
from collectors.inventory_run import Details, Page, vendor_main
from collectors.vendor_connection import HttpSession
from collectors.vendor_http import VendorAuthError, VendorClient, VendorMalformed, VendorStatusError
from collectors.vendor_json import JsonArray
from collectors.vendor_settings import (
    VENDOR_CREDENTIALS,
    Environment,
    HttpSettings,
    VendorSettingsError,
    missing_credentials,
)

NAME = "ninja"
VENDOR = "NinjaOne"
CREDENTIAL_VARIABLES = VENDOR_CREDENTIALS["ninja"]
DEFAULT_BASE_URL = "https://app.ninjarmm.com"  # the US instance
TOKEN_PATHS = ("/ws/oauth/token", "/oauth/token")
API_PREFIXES = ("/v2", "/api/v2")
# Refresh this long before the token's expiry (at most a tenth of its lifetime).
REFRESH_MARGIN_SECONDS = 60.0

PLATFORM_OF_CLASS = {
    "WINDOWS_SERVER": "windows", "WINDOWS_WORKSTATION": "windows",
    "MAC": "macos", "MAC_SERVER": "macos",
    "LINUX_SERVER": "linux", "LINUX_WORKSTATION": "linux",
    "APPLE_IOS": "ios", "APPLE_IPADOS": "ios", "ANDROID": "android",
    "VMWARE_VM_HOST": "virtualization", "VMWARE_VM_GUEST": "virtualization",
    "HYPERV_VMM_HOST": "virtualization", "HYPERV_VMM_GUEST": "virtualization",
    "CLOUD_MONITOR_TARGET": "cloud",
}  # fmt: skip
OS_OF_PLATFORM = {"windows": "Windows", "macos": "macOS", "linux": "Linux", "ios": "iOS", "android": "Android"}
# The code that makes a stored record of a NinjaOne device: part of each record's digest.
NORMALIZING_CODE = code_fingerprint(__file__, inventory_records.__file__, inventory_store.__file__)


@dataclasses.dataclass(frozen=True)
class NinjaConfig:
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    scope: str = "monitoring"
    token_path: str = TOKEN_PATHS[0]
    api_prefix: str = API_PREFIXES[0]
    page_size: int = 1000
    computer_systems: bool = True
    http: HttpSettings = dataclasses.field(default_factory=HttpSettings)

    @property
    def secrets(self) -> list[str]:
        return [self.client_secret]


def load_config(environ: Mapping[str, str]) -> NinjaConfig:
    env = Environment(environ, "NINJA")
    missing = [name for name in CREDENTIAL_VARIABLES if not environ.get(name, "").strip()]
    if missing:
        raise missing_credentials(NAME, missing)
    token_path = env.text("TOKEN_PATH", TOKEN_PATHS[0])
    if token_path not in TOKEN_PATHS:
        raise VendorSettingsError(f"NINJA_TOKEN_PATH must be one of {', '.join(TOKEN_PATHS)}, got {token_path!r}")
    api_prefix = env.text("API_PREFIX", API_PREFIXES[0]).rstrip("/")
    if api_prefix not in API_PREFIXES:
        raise VendorSettingsError(f"NINJA_API_PREFIX must be one of {', '.join(API_PREFIXES)}, got {api_prefix!r}")
    scope = env.text("SCOPE", "monitoring")
    if not all(part in ("monitoring", "management", "control") for part in scope.split()):
        raise VendorSettingsError(f"NINJA_SCOPE must list monitoring, management and/or control, got {scope!r}")
    return NinjaConfig(
        client_id=env.raw("CLIENT_ID"),
        client_secret=env.raw("CLIENT_SECRET"),
        base_url=env.base_url("BASE_URL", DEFAULT_BASE_URL),
        scope=scope,
        token_path=token_path,
        api_prefix=api_prefix,
        page_size=env.integer("PAGE_SIZE", 1000, 1, 10_000),
        computer_systems=env.boolean("COMPUTER_SYSTEMS", True),
        http=env.http(HttpSettings(requests_per_minute=100)),
    )


class NinjaApi:
    """GETs with a bearer token that is fetched, refreshed before expiry, and once on a 401."""

    def __init__(self, config: NinjaConfig, session: HttpSession) -> None:
        self.config = config
        self.client = VendorClient(VENDOR, config.base_url, config.http, session, config.secrets)
        self._token: str | None = None
        self._refresh_at = 0.0
        self.granted_scope = ""
        self.tokens_fetched = 0

    async def fetch_token(self) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "scope": self.config.scope,
        }
        try:
            resp = await self.client.request("POST", self.config.token_path, form=form)
        except VendorStatusError as exc:
            if exc.status not in (400, 401, 403):  # OAuth servers answer bad credentials with 400 or 401
                raise
            raise VendorAuthError(f"NinjaOne rejected the client credentials (HTTP {exc.status})", exc.status) from None
        body = resp.body
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise VendorMalformed("NinjaOne's token answer has no access_token")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise VendorMalformed(f"NinjaOne's token answer has token_type {str(token_type)[:40]!r}, not Bearer")
        lifetime = body.get("expires_in", 3600)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise VendorMalformed("NinjaOne's token answer has no usable expires_in")
        self._token = token
        self.client.secrets.append(token)
        self._refresh_at = time.monotonic() + lifetime - min(REFRESH_MARGIN_SECONDS, lifetime / 10)
        scope = body.get("scope")
        self.granted_scope = scope if isinstance(scope, str) else ""
        self.tokens_fetched += 1
        return token

    async def get(self, path: str, params: Mapping[str, str | int]) -> Any:
        full = self.config.api_prefix + path
        token = self._token
        if token is None or time.monotonic() >= self._refresh_at:
            token = await self.fetch_token()
        try:
            return (await self.client.request("GET", full, params=params, headers=_bearer(token))).body
        except VendorAuthError as exc:
            if exc.status != 401:
                raise VendorAuthError(
                    f"NinjaOne refused GET {full} (HTTP {exc.status}): the API client lacks the"
                    f" permission or scope (NINJA_SCOPE is {self.config.scope!r})",
                    exc.status,
                ) from None
        # A 401 with a token we thought valid (revoked, or the clocks disagree): one fresh token.
        token = await self.fetch_token()
        try:
            return (await self.client.request("GET", full, params=params, headers=_bearer(token))).body
        except VendorAuthError as exc:
            raise VendorAuthError(
                f"NinjaOne refused GET {full} (HTTP {exc.status}) even with a fresh access token", exc.status
            ) from None

    async def get_array(self, path: str, params: Mapping[str, str | int]) -> JsonArray:
        body = await self.get(path, params)
        if not isinstance(body, JsonArray) or not all(isinstance(item, dict) for item in body):
            where = self.config.api_prefix + path
            raise VendorMalformed(f"NinjaOne's answer to GET {where} is not a JSON array of objects")
        return body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _int_id(item: Mapping[str, Any], key: str, what: str) -> int:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise VendorMalformed(f"NinjaOne sent {what} without an integer {key}")
    return value


async def paged_by_after(api: NinjaApi, path: str, page_size: int, what: str) -> AsyncIterator[JsonArray]:
    """``pageSize``/``after`` paging: ``after`` is the last id of the previous page; a page
    shorter than ``pageSize`` is the last."""
    after: int | None = None
    while True:
        params: dict[str, str | int] = {"pageSize": page_size}
        if after is not None:
            params["after"] = after
        items = await api.get_array(path, params)
        if items:
            last = _int_id(items[-1], "id", what)
            if after is not None and last <= after:
                raise VendorMalformed(f"NinjaOne's {what} paging did not advance (after={after}, last id {last})")
            after = last
            yield items
        if len(items) < page_size:
            return


def _object(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def normalize_device(raw: dict[str, Any], organizations: Mapping[int, str]) -> DeviceRecord:
    """A ``devices-detailed`` item as an inventory record; any field may be absent or null."""
    device_id = _int_id(raw, "id", "a device")
    node_class = clean_text(raw.get("nodeClass"))
    platform = "other"
    if node_class:
        platform = PLATFORM_OF_CLASS.get(node_class, "network" if node_class.startswith("NMS_") else "other")
    org_id = raw.get("organizationId")
    org_name = organizations.get(org_id) if isinstance(org_id, int) else None
    references = _object(raw, "references")
    if org_name is None:
        org_name = clean_text(_object(references, "organization").get("name"))
    # Not in the published schema, but sent by some instances: read them when present.
    os_info = _object(raw, "os")
    system = _object(raw, "system")
    offline = raw.get("offline")
    return DeviceRecord(
        vendor_id=str(device_id),
        raw=raw,
        organization_id=str(org_id) if isinstance(org_id, int) and not isinstance(org_id, bool) else None,
        organization_name=org_name,
        display_name=clean_text(raw.get("displayName")),
        host_name=clean_text(raw.get("systemName")) or clean_text(raw.get("netbiosName")),
        dns_name=clean_text(raw.get("dnsName")),
        platform=platform,
        device_class=node_class,
        os_name=clean_text(os_info.get("name")) or OS_OF_PLATFORM.get(platform),
        serial_number=clean_text(system.get("serialNumber")),
        manufacturer=clean_text(system.get("manufacturer")),
        model=clean_text(system.get("model")),
        ip_addresses=clean_list(raw.get("ipAddresses")),
        mac_addresses=clean_list(raw.get("macAddresses")),
        online=(not offline) if isinstance(offline, bool) else None,
        last_contact_at=epoch_seconds(raw.get("lastContact")),
    )


def device_seen(raw: dict[str, Any], raw_json: str, organizations: Mapping[int, str]) -> VendorRecord:
    """A ``devices-detailed`` item as it came (``raw_json`` is its text), normalized only if it
    is written; its digest covers the organization's name, which comes from another listing."""
    org_id = raw.get("organizationId")
    org_name = organizations.get(org_id) if isinstance(org_id, int) else None
    return VendorRecord(
        vendor_id=str(_int_id(raw, "id", "a device")),
        raw_json=raw_json,
        digest=record_digest(NORMALIZING_CODE, raw_json, org_name),
        normalize=functools.partial(normalize_device, raw, organizations),
    )


class NinjaSource:
    """Organizations, then devices, then (optionally) the computer-systems report."""

    vendor = VENDOR
    noun = "devices"

    def __init__(self, config: NinjaConfig, session: HttpSession) -> None:
        self.config = config
        self.api = NinjaApi(config, session)
        self.has_details = config.computer_systems

    async def organizations(self) -> dict[int, str]:
        names: dict[int, str] = {}
        async for items in paged_by_after(self.api, "/organizations", self.config.page_size, "an organization"):
            for org in items:
                names[_int_id(org, "id", "an organization")] = clean_text(org.get("name")) or ""
        return names

    async def pages(self) -> AsyncGenerator[Page, None]:
        organizations = await self.organizations()
        async for items in paged_by_after(self.api, "/devices-detailed", self.config.page_size, "a device"):
            yield Page([device_seen(item, text, organizations) for item, text in zip(items, items.texts, strict=True)])

    async def details(self) -> AsyncGenerator[Details, None]:
        """The computer-systems report, page by page (``cursor`` paging; a short or empty
        page, or an answer without a cursor name, is the last)."""
        path = "/queries/computer-systems"
        cursor: str | None = None
        previous_first: Any = None
        while True:
            params: dict[str, str | int] = {"pageSize": self.config.page_size}
            if cursor:
                params["cursor"] = cursor
            body = await self.api.get(path, params)
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise VendorMalformed(f"NinjaOne's answer to GET {self.config.api_prefix}{path} has no results list")
            # The cursor's name may stay the same from page to page (a server-side cursor) or
            # change; either way a page that starts where the previous one started is stuck.
            first = results[0].get("deviceId") if results else None
            if first is not None and first == previous_first:
                raise VendorMalformed("NinjaOne's computer-systems report paging did not advance")
            previous_first = first
            rows: Details = []
            for row in results:
                device_id = row.get("deviceId")
                if isinstance(device_id, int) and not isinstance(device_id, bool):
                    serial = clean_text(row.get("serialNumber")) or clean_text(row.get("biosSerialNumber"))
                    maker, model = clean_text(row.get("manufacturer")), clean_text(row.get("model"))
                    rows.append((str(device_id), maker, model, serial))
            if rows:
                yield rows
            next_cursor = body.get("cursor") if isinstance(body, dict) else None
            name = next_cursor.get("name") if isinstance(next_cursor, dict) else None
            if len(results) < self.config.page_size or not isinstance(name, str) or not name:
                return
            cursor = name


async def check(config: NinjaConfig, session: HttpSession) -> str:
    """Credentials and connectivity: a token, one organization, one device."""
    api = NinjaApi(config, session)
    await api.fetch_token()
    orgs = await api.get_array("/organizations", {"pageSize": 1})
    devices = await api.get_array("/devices-detailed", {"pageSize": 1})
    scope = api.granted_scope or config.scope
    return (
        f"NinjaOne at {config.base_url}: token granted (scope {scope!r});"
        f" organizations readable ({'at least one' if orgs else 'none'});"
        f" devices readable ({'at least one' if devices else 'none'})"
    )


def main(argv: list[str] | None = None) -> int:
    return vendor_main(NAME, load_config, NinjaSource, check, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
