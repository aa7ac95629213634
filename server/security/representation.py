"""The caller as JSON (``GET /api/me``): identity and roles, never a credential."""

from __future__ import annotations

from typing import Any

from collectors.contract import GRANTABLE_ROLES
from server.security.credentials import Principal


def granted_roles(role: str | None) -> list[str]:
    """The role and every role it implies, lowest first (admin may trigger and read)."""
    if role not in GRANTABLE_ROLES:
        return []
    return list(GRANTABLE_ROLES[: GRANTABLE_ROLES.index(role) + 1])


def me_json(principal: Principal) -> dict[str, Any]:
    api_key = None
    if principal.via == "api_key":
        api_key = {"id": principal.key_id, "name": principal.name}
    return {
        "actor": principal.actor,
        "via": principal.via,
        "open_mode": principal.via == "open",
        "role": principal.role,
        "roles": granted_roles(principal.role),
        "api_key": api_key,
        "subject": principal.subject,
    }
