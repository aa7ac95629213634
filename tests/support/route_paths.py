"""A concrete path for any route in the router, so tests can walk every route (including
routes other modules add later) without knowing them."""

from __future__ import annotations

import string

from aiohttp import web

from server.package_data import STATIC_DIR

# Path parameters filled with plausible values; unknown ones (routes added later) get "x".
SAMPLE_PARAMETERS = {"batch_id": "bc_00000000", "job_id": "zz_00000000", "name": "COLLECTOR_RUN_TRACKING_API.md"}


def concrete_path(route: web.AbstractRoute) -> str:
    resource = route.resource
    assert resource is not None
    if isinstance(resource, web.StaticResource):
        return resource.canonical.rstrip("/") + "/" + sorted(p.name for p in STATIC_DIR.iterdir())[0]
    info = resource.get_info()
    if "path" in info:
        return str(info["path"])
    return str(info["formatter"]).format_map(
        {**dict.fromkeys(path_parameters(info["formatter"]), "x"), **SAMPLE_PARAMETERS}
    )


def path_parameters(formatter: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(formatter) if name]
