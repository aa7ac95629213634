"""Which collectors a query names: configured ones, and ones that are no longer configured but
still have runs (their history stays readable after they leave the collectors file)."""

from __future__ import annotations

from aiohttp import web

from server.api.validation import check_collector_names, query_list
from server.errors import ValidationError
from server.keys import POOL, REGISTRY
from server.runs import history


async def named_collectors(request: web.Request, name: str = "collectors") -> tuple[list[str] | None, list[str]]:
    """``?collectors=`` as (names, those of them no longer configured); (None, []) when absent.
    A name that is neither configured nor has runs is a 400."""
    names = query_list(request, name)
    if names is None:
        return None, []
    registry = request.app[REGISTRY]
    unconfigured = [n for n in dict.fromkeys(names) if n not in registry]
    with_runs = await history.collectors_with_runs(request.app[POOL], unconfigured) if unconfigured else set()
    missing = [n for n in unconfigured if n not in with_runs]
    if missing:
        shown = ", ".join(repr(n[:64]) for n in missing[:10])
        raise ValidationError(
            f"Unknown collector(s): {shown}: not configured and no runs."
            f" Configured collectors: {', '.join(sorted(registry))}"
        )
    known = {**dict.fromkeys(registry), **dict.fromkeys(with_runs)}
    return check_collector_names(names, known, name), [n for n in unconfigured if n in with_runs]
