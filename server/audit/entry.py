"""What one audit row says; for the CLI, a schedule or the system, ``by`` fills it in (an entry
from a request is ``actions.from_request``'s). It imports no aiohttp, so ``collector-hub keys``
records its changes without importing the HTTP stack.
"""

from __future__ import annotations

import dataclasses

from server.audit.actor import Actor

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
            detail=cut_detail(detail) if detail else self.detail,
        )


def cut_detail(detail: str | None) -> str | None:
    return None if detail is None else detail[:MAX_DETAIL_CHARS]


def by(
    actor: Actor, action: str, *target_ids: str, outcome: str = "succeeded", detail: str | None = None
) -> AuditEntry:
    """An entry for a change not asked for over HTTP (the CLI, a schedule, the system)."""
    return AuditEntry(actor, action, tuple(target_ids), outcome, None, cut_detail(detail))
