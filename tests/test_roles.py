"""Every route declares who may call it (the security middleware enforces the declaration)."""

from __future__ import annotations

import pytest

from collectors.contract import ROLES
from server.api.roles import requires, role_of_route, role_satisfies
from server.app import create_app


def test_every_route_declares_a_role(settings):
    app = create_app(settings)
    missing = [
        f"{route.method} {route.resource.canonical}"  # type: ignore[union-attr]
        for route in app.router.routes()
        if route.method != "HEAD" and role_of_route(route) is None
    ]
    assert missing == []


def test_trigger_routes_need_more_than_read(settings):
    app = create_app(settings)
    roles = {(r.method, r.resource.canonical): role_of_route(r) for r in app.router.routes()}  # type: ignore[union-attr]
    assert roles[("POST", "/api/collectors/run")] == "trigger"
    assert roles[("GET", "/api/collectors/runs/batch/{batch_id}")] == "read"
    assert roles[("GET", "/")] == "public"


def test_roles_are_ordered():
    assert role_satisfies("admin", "read")
    assert not role_satisfies("read", "trigger")
    assert ROLES[0] == "public"


def test_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown role"):
        requires("root")
