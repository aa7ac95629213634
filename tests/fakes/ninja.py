"""A fake NinjaOne public API v2 (VENDOR_APIS.md, "NinjaOne"):

- ``POST /ws/oauth/token`` and ``/oauth/token``: form-encoded client credentials; answers
  ``{"access_token", "token_type": "Bearer", "expires_in", "scope"}``; tokens expire;
- every API path under both ``/v2`` and ``/api/v2``; a missing, unknown or expired bearer
  token gets 401;
- ``GET /organizations`` and ``/devices-detailed`` (and ``/devices``): bare JSON arrays paged
  with ``pageSize`` and ``after`` (the last id of the previous page);
- ``GET /queries/computer-systems``: ``{"cursor": {"name", "offset", "count", "expires"},
  "results": [...]}`` paged with ``cursor``;
- timestamps are epoch seconds as floating-point numbers; some fields are null or absent.

Devices are generated from their index. Each device's and report row's JSON text is kept once
made (:meth:`FakeNinja.prepare` makes them all ahead, for benchmarks), and an answer is those
texts joined: the same bytes as encoding the answer whole, for a fraction of the CPU, which the
fake shares with the collector it serves.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from tests.fakes.common import FaultPlan, RequestRecord

NODE_CLASSES = ("WINDOWS_WORKSTATION", "WINDOWS_SERVER", "MAC", "LINUX_SERVER", "VMWARE_VM_GUEST", "NMS_SWITCH")
EPOCH = 1_764_000_000.0


class FakeNinja:
    def __init__(
        self,
        devices: int = 10,
        *,
        client_id: str = "fake-ninja-client-id",
        client_secret: str = "fake-ninja-client-secret-0123456789",
        organizations: int = 3,
        token_lifetime: float = 3600.0,
        id_step: int = 3,
        page_delay: float = 0.0,
    ) -> None:
        self.device_count = devices
        self.client_id = client_id
        self.client_secret = client_secret
        self.organization_count = organizations
        self.token_lifetime = token_lifetime
        self.id_step = id_step
        self.page_delay = page_delay  # the server's latency per device page
        # Cleared: every device page waits until it is set again (a run held mid-way, for as
        # long as a test needs, whatever the machine's load).
        self.device_pages_open = asyncio.Event()
        self.device_pages_open.set()
        self.removed: set[int] = set()  # device indexes gone from the account
        self.faults = FaultPlan()
        self.requests: list[RequestRecord] = []
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.tokens_issued = 0
        self.expired_token_uses = 0
        self.cursors: dict[str, int] = {}  # computer-systems cursor name -> next offset
        self.stuck_report = False  # a broken server: the report cursor never advances
        self._device_texts: dict[int, str] = {}
        self._report_texts: dict[int, str] = {}

    # --- the account -------------------------------------------------------------------
    def device_id(self, index: int) -> int:
        return 1000 + index * self.id_step

    def host_name(self, index: int) -> str:
        return f"HOST-{index:05d}"

    def present(self, start_index: int = 0) -> Iterator[int]:
        for index in range(start_index, self.device_count):
            if index not in self.removed:
                yield index

    def device(self, index: int) -> dict[str, Any]:
        device_id = self.device_id(index)
        org = index % self.organization_count + 1
        name = self.host_name(index)
        record: dict[str, Any] = {
            "id": device_id,
            "parentDeviceId": None,
            "organizationId": org,
            "locationId": org * 10,
            "nodeClass": NODE_CLASSES[index % len(NODE_CLASSES)],
            "nodeRoleId": 1,
            "rolePolicyId": 2,
            "policyId": None,
            "approvalStatus": "APPROVED",
            "offline": index % 5 == 0,
            "displayName": f"{name} (front desk)",
            "systemName": name,
            "dnsName": f"{name.lower()}.corp.example" if index % 7 else None,
            "netbiosName": name,
            "created": EPOCH - 86400.5,
            "lastContact": EPOCH + index + 0.25,
            "lastUpdate": EPOCH + index + 0.5,
            "userData": {},
            "tags": ["fake"],
            "fields": {},
            "maintenance": {"status": "NONE", "start": None, "end": None},
            "references": {"organization": {"id": org, "name": f"Org {org}"}},
            "ipAddresses": [f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"],
            "publicIP": "203.0.113.7",
            "notes": [{"text": "fake device"}],
            "deviceType": "AGENT",
        }
        if index % 3:
            record["macAddresses"] = [f"02:00:00:{index // 65536 % 256:02x}:{index // 256 % 256:02x}:{index % 256:02x}"]
        return record

    def report_row(self, index: int) -> dict[str, Any]:
        return {
            "deviceId": self.device_id(index),
            "name": self.host_name(index),
            "manufacturer": "Fabrikam" if index % 2 else "Contoso",
            "model": f"Model {index % 4}",
            "serialNumber": f"SN{index:06d}" if index % 11 else None,
            "biosSerialNumber": f"BIOS{index:06d}",
            "domain": "corp.example",
            "domainRole": "MemberWorkstation",
            "numberOfProcessors": 4,
            "totalPhysicalMemory": 17179869184,
            "virtualMachine": index % 6 == 4,
            "chassisType": "DESKTOP",
            "timestamp": EPOCH + 0.75,
        }

    def device_text(self, index: int) -> str:
        """``json.dumps(self.device(index))``, made once."""
        text = self._device_texts.get(index)
        if text is None:
            text = self._device_texts[index] = json.dumps(self.device(index))
        return text

    def report_text(self, index: int) -> str:
        text = self._report_texts.get(index)
        if text is None:
            text = self._report_texts[index] = json.dumps(self.report_row(index))
        return text

    def prepare(self) -> None:
        """Make every device's and report row's text now, before a measured run."""
        for index in range(self.device_count):
            self.device_text(index)
            self.report_text(index)

    def index_after(self, after: int | None) -> int:
        if after is None:
            return 0
        return max(0, (after - 1000) // self.id_step + 1)

    # --- HTTP --------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.middlewares.append(self._record_and_fault)
        for token_path in ("/ws/oauth/token", "/oauth/token"):
            app.router.add_post(token_path, self._token)
        for prefix in ("/v2", "/api/v2"):
            app.router.add_get(prefix + "/organizations", self._organizations)
            app.router.add_get(prefix + "/devices-detailed", self._devices)
            app.router.add_get(prefix + "/devices", self._devices)
            app.router.add_get(prefix + "/queries/computer-systems", self._computer_systems)
        return app

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RequestRecord(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        fault = self.faults.take(request.path)
        if fault is not None:
            return await self.faults.respond(fault)
        response: web.StreamResponse = await handler(request)
        return response

    async def _token(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response({"error": "invalid_request"}, status=400)
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        scope = str(form.get("scope", "monitoring"))
        if not set(scope.split()) <= {"monitoring", "management", "control"}:
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        self.tokens_issued += 1
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime, "scope": scope}
        )

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self.tokens.get(token) if scheme == "Bearer" else None
        if expiry is None:
            return False
        if time.monotonic() >= expiry:
            self.expired_token_uses += 1
            return False
        return True

    def _unauthorized(self) -> web.Response:
        body = {"error": "invalid_token", "error_description": "token invalid or expired"}
        return web.json_response(body, status=401)

    @staticmethod
    def _page_params(request: web.Request) -> tuple[int, int | None]:
        size = int(request.query.get("pageSize", "1000"))
        after = request.query.get("after")
        return size, int(after) if after is not None else None

    async def _organizations(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        size, after = self._page_params(request)
        orgs: list[dict[str, Any]] = [
            {"id": n, "name": f"Org {n}", "description": None, "nodeApprovalMode": "AUTOMATIC", "tags": [],
             "fields": {}, "userData": {}}
            for n in range(1, self.organization_count + 1)
            if after is None or n > after
        ]  # fmt: skip
        return web.json_response(orgs[:size])

    async def _devices(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        size, after = self._page_params(request)
        await self.device_pages_open.wait()
        if self.page_delay:
            await asyncio.sleep(self.page_delay)
        page: list[str] = []
        for index in self.present(self.index_after(after)):
            if len(page) == size:
                break
            page.append(self.device_text(index))
        return _json_answer("[" + ", ".join(page) + "]")

    async def _computer_systems(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        size = int(request.query.get("pageSize", "1000"))
        cursor = request.query.get("cursor")
        # A server-side cursor: one name for the whole listing, the position kept here.
        if cursor is None:
            cursor = f"computer-systems-{secrets.token_hex(6)}"
            self.cursors[cursor] = 0
        if cursor not in self.cursors:
            return web.json_response({"error": "cursor not found or expired"}, status=400)
        offset = self.cursors[cursor]
        # report rows in device order
        if self.removed:
            page = list(itertools.islice(self.present(), offset, offset + size))
        else:
            page = list(range(offset, min(offset + size, self.device_count)))
        rows = [self.report_text(index) for index in page]
        if not self.stuck_report:
            self.cursors[cursor] = offset + len(rows)
        cursor_info = {"name": cursor, "offset": offset, "count": len(rows), "expires": EPOCH + 3600.0}
        # json.dumps({"cursor": cursor_info, "results": rows}), from the rows' texts
        return _json_answer('{"cursor": ' + json.dumps(cursor_info) + ', "results": [' + ", ".join(rows) + "]}")


def _json_answer(text: str) -> web.Response:
    """What ``web.json_response`` answers for a value whose ``json.dumps`` is ``text``."""
    return web.Response(text=text, content_type="application/json")
