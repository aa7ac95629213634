"""Which routes make changes, and what each is called in the audit trail.

A handler declares its action next to its route (``@audited("schedule.create")``), as it
declares its role; the refusal middleware (``middleware.py``) records a refused request to any
such route, and the handler's store records the change itself in its own transaction.

The actor of a request is set by the security middleware (``ACTOR``, from the credential it
checked); the request id and the client's address come from the request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from server.api.client_address import client_address
from server.audit.actor import ANONYMOUS
from server.audit.entry import AuditEntry, cut_detail
from server.audit.keys import ACTOR
from server.keys import SETTINGS
from server.observability.access_log import request_id_of

MAX_TARGET_CHARS = 100
_ATTR = "__collector_hub_audit_action__"
F = TypeVar("F", bound=Callable[..., Any])


def audited(action: str) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        setattr(handler, _ATTR, action)
        return handler

    return mark


def action_of_route(route: web.AbstractRoute) -> str | None:
    return getattr(route.handler, _ATTR, None)


def action_of(request: web.Request) -> str:
    """The action the matched route declares (a handler calls this for its own entry)."""
    action = action_of_route(request.match_info.route)
    if action is None:
        raise RuntimeError(f"{request.method} {request.path}: the handler declares no audit action")
    return action


def path_ids(request: web.Request) -> tuple[str, ...]:
    """The ids in the request's path (a batch, a job, a schedule, a webhook), cut to size."""
    return tuple(value[:MAX_TARGET_CHARS] for value in request.match_info.values())


def change(request: web.Request, action: str | None = None) -> AuditEntry:
    """The entry for the change ``request`` asks for: its route's action (or ``action``), and
    the ids in its path; the store adds the ids it creates and writes it with the change."""
    return from_request(request, action or action_of(request), path_ids(request))


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
        detail=cut_detail(detail),
        request_id=request_id_of(request),
        client_address=client_address(request, request.app[SETTINGS].trusted_proxies),
    )
