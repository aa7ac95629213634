"""Who made a change: an API key (its name and public id), a token's subject, open mode, a
CLI user, a schedule or the system. Never a credential."""

from __future__ import annotations

import dataclasses
import getpass
import os

ACTOR_KINDS = ("api_key", "jwt", "open", "anonymous", "schedule", "system", "cli")


@dataclasses.dataclass(frozen=True)
class Actor:
    name: str  # "deploy-bot", "jwt alice@example.com", "open mode", "cli alice", "schedule nightly"
    kind: str  # one of ACTOR_KINDS
    key_id: str | None = None  # an API key's public id, never the key
    role: str | None = None


ANONYMOUS = Actor("anonymous", "anonymous")


def cli_actor() -> Actor:
    """Who runs a ``collector-hub`` command on this machine: the operating system's user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return Actor(f"cli {user}", "cli")


def schedule_actor(name: str) -> Actor:
    return Actor(f"schedule {name}", "schedule")
