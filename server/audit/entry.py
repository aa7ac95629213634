"""What one audit row says, filled in from a request, or for the CLI, a schedule or the system.

The actor of a request is set by the security middleware (``ACTOR``, from the credential it
checked); the request id and the client's address come from the request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from aiohttp import web

from server.api.client_address import client_address
from server.audit.actor import ANONYMOUS, Actor
from server.audit.keys import ACTOR
from server.keys import SETTINGS
from server.observability.access_log import request_id_of

OUTCOMES = ("succeeded", "refused", "failed")
MAX_DETAIL_CHARS = 1000


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    actor: Actor
    action: str  # "schedule.create", "batch.cancel", ... (docs/AUDIT.md lists them)
    target_ids: tuple[str, ...] = ()
    outcome: str = "succeeded"  # one of OUTCOMES
    status: int | None = None  # the HTTP status of a refused or failed request
    detail: str | None = None  # what was changed, or why it was refused; never a secret
    request_id: str | None = None
    client_address: str | None = None

    def about(self, *target_ids: str, detail: str | None = None) -> AuditEntry:
        """The same entry with more targets (ids known only once the change is made), and a detail."""
        return dataclasses.replace(
            self,
            target_ids=tuple(dict.fromkeys((*self.target_ids, *target_ids))),  # each id once, in order
            detail=_cut(detail) if detail else self.detail,
        )


def _cut(detail: str | None) -> str | None:
    return None if detail is None else detail[:MAX_DETAIL_CHARS]


def from_request(
    request: web.Request,
    action: str,
    target_ids: Sequence[str] = (),
    *,
    outcome: str = "succeeded",
    status: int | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """An entry for a change asked for by ``request``."""
    return AuditEntry(
        actor=request.get(ACTOR, ANONYMOUS),
        action=action,
        target_ids=tuple(target_ids),
        outcome=outcome,
        status=status,
        detail=_cut(detail),
        request_id=request_id_of(request),
        client_address=client_address(request, request.app[SETTINGS].trusted_proxies),
    )


def by(
    actor: Actor, action: str, *target_ids: str, outcome: str = "succeeded", detail: str | None = None
) -> AuditEntry:
    """An entry for a change not asked for over HTTP (the CLI, a schedule, the system)."""
    return AuditEntry(actor, action, tuple(target_ids), outcome, None, _cut(detail))
