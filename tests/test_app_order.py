"""The app factory's order is code: each part's startup finds the keys it reads."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from server.app import PARTS, check_start_order, create_app
from server.keys import REGISTRY, SETTINGS
from server.security.keys import AUTHENTICATOR
from server.settings import Settings

BUILT: set[web.AppKey[Any]] = {SETTINGS, REGISTRY, AUTHENTICATOR}  # what create_app sets before anything starts


def test_the_parts_start_in_an_order_that_works(settings: Settings) -> None:
    check_start_order(PARTS, BUILT)
    create_app(settings)  # checks its own order too


def test_a_part_moved_before_what_it_needs_is_refused() -> None:
    names = [part.name for part in PARTS]
    runner = PARTS[names.index("runner")]
    moved = (runner, *(part for part in PARTS if part is not runner))
    with pytest.raises(RuntimeError, match="the runner part starts before anything makes pool, database_url"):
        check_start_order(moved, BUILT)
