"""A fake ThreatLocker Portal API (VENDOR_APIS.md, "ThreatLocker"):

- served under ``/portalapi`` like the real instances;
- the raw API token in ``Authorization`` with no ``Bearer`` prefix, else 401 with the
  vendor's error shape ``{"LoggerId", "StatusCode", "Message"}``; ``ManagedOrganizationId``
  (or ``OrganizationId``) must name the child organization if sent, else 403;
- ``POST /Computer/ComputerGetByAllParameters`` with a ``ComputerParameterDto`` JSON body
  (``pageSize``, ``pageNumber`` from 1, ...): a bare JSON array ordered by computer name, the
  totals in headers in one of the forms clients have seen (``totals``): a JSON
  ``pagination`` header, separate ``totalItems``/``totalPages``/``firstItem``/``lastItem``
  headers, ``totalRows`` on each row only, or none at all.

Each computer's JSON text is kept once made (:meth:`FakeThreatLocker.prepare` makes them all
ahead, for benchmarks), and a page is those texts joined: the same bytes as encoding the page
whole, for a fraction of the CPU, which the fake shares with the collector it serves.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.common import FaultPlan, RequestRecord

BASE_PATH = "/portalapi"
OS_TYPES = (1, 1, 2, 3)


class FakeThreatLocker:
    def __init__(
        self,
        computers: int = 10,
        *,
        api_token: str = "fake-threatlocker-token-0123456789abcdef",
        organization_id: str = "7f0c6a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f",
        totals: str = "pagination",
        name_offset: int = 0,
        page_delay: float = 0.0,
    ) -> None:
        self.computer_count = computers
        self.api_token = api_token
        self.organization_id = organization_id
        self.totals = totals
        self.name_offset = name_offset  # computer i is named like NinjaOne's device i + offset
        self.removed: set[int] = set()
        self.page_delay = page_delay  # the server's latency per page
        self.ignore_page_number = False  # a broken server: always the first page
        self.faults = FaultPlan()
        self.requests: list[RequestRecord] = []
        self._texts: dict[int, str] = {}

    def computer_id(self, index: int) -> str:
        return str(uuid.UUID(int=0x5EED_0000_0000_0000_0000_0000_0000_0000 + index))

    def computer(self, index: int) -> dict[str, Any]:
        name = f"HOST-{index + self.name_offset:05d}"
        return {
            "computerId": self.computer_id(index),
            "computerName": name,
            "hostname": f"{name.lower()}.corp.example" if index % 4 else None,
            "group": "Workstations",
            "organizationId": self.organization_id,
            "osType": OS_TYPES[index % len(OS_TYPES)],
            "action": "Secure",
            "mode": "Secure",
            "lastCheckin": f"2026-11-29T10:{index % 60:02d}:00" + ("Z" if index % 2 else ""),
            "threatLockerVersion": "9.3.1",
            "computerInstallDate": "2025-01-02T03:04:05Z",
            "isDeleted": False,
            "maintenanceTypeId": 1,
            "maintenanceCapabilities": None,
        }

    def computer_text(self, index: int) -> str:
        """``json.dumps(self.computer(index))``, made once."""
        text = self._texts.get(index)
        if text is None:
            text = self._texts[index] = json.dumps(self.computer(index))
        return text

    def prepare(self) -> None:
        """Make every computer's text now, before a measured run."""
        for index in range(self.computer_count):
            self.computer_text(index)

    def present(self) -> list[int] | range:
        if not self.removed:
            return range(self.computer_count)
        return [i for i in range(self.computer_count) if i not in self.removed]

    def app(self) -> web.Application:
        app = web.Application()
        app.middlewares.append(self._record_and_fault)
        app.router.add_post(BASE_PATH + "/Computer/ComputerGetByAllParameters", self._computers)
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

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        body = {"LoggerId": "00000000-fake", "StatusCode": status, "Message": message}
        return web.json_response(body, status=status)

    async def _computers(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self.api_token:
            return self._error(401, "Unauthorized")
        org = request.headers.get("ManagedOrganizationId") or request.headers.get("OrganizationId")
        if org is not None and org != self.organization_id:
            return self._error(403, "You do not have access to this organization")
        try:
            body = json.loads(await request.read())
            size, number = int(body["pageSize"]), int(body["pageNumber"])
        except (ValueError, KeyError, TypeError):
            return self._error(400, "Invalid parameters")
        if size < 1 or number < 1:
            return self._error(400, "Invalid parameters")
        if self.page_delay:
            await asyncio.sleep(self.page_delay)
        present = self.present()
        total = len(present)
        first = 0 if self.ignore_page_number else (number - 1) * size
        indexes = present[first : first + size]
        pages = (total + size - 1) // size
        headers: dict[str, str] = {}
        if self.totals == "pagination":
            headers["pagination"] = json.dumps(
                {"currentPage": number, "itemsPerPage": size, "totalItems": total, "totalPages": pages,
                 "firstItem": first + 1, "lastItem": first + len(indexes)}
            )  # fmt: skip
        elif self.totals == "separate":
            headers.update(
                totalItems=str(total),
                totalPages=str(pages),
                firstItem=str(first + 1),
                lastItem=str(first + len(indexes)),
            )
        elif self.totals == "rows":
            rows = [{**self.computer(i), "totalRows": total} for i in indexes]
            return web.json_response(rows, headers=headers)
        # json.dumps of the page, from its computers' texts
        text = "[" + ", ".join(self.computer_text(i) for i in indexes) + "]"
        return web.Response(text=text, content_type="application/json", headers=headers)
