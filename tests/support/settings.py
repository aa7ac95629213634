"""Settings for the app under test."""

from __future__ import annotations

import dataclasses

from server.settings import Settings


def replace_settings(settings: Settings, **changes: object) -> Settings:
    """A copy of ``settings`` with ``changes`` (the fixtures' settings plus what one test needs)."""
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
