"""The OpenAPI 3.1 document served at ``/api/openapi.json``, assembled from its parts.

It has to be exact, not merely helpful: tests check that every route of the app is described
and that real responses validate against the schemas, and later the server is fuzzed against
it. Each part describes one concern's paths and defines the schemas they use; the security
responses (401, 403, 429, 503) are then added to every operation by openapi_security.py.

To describe a new concern (inventory, schedules, ...): write server/<concern>/openapi.py with
a ``PART`` built from server/openapi/components.py only, and add it to ``PARTS``.
tests/test_openapi.py says which routes are missing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from server import __version__
from server.audit import openapi as audit
from server.health import openapi as health
from server.inventory import openapi as inventory
from server.joblogs import openapi as joblogs
from server.openapi import components
from server.openapi.components import Names, Part, with_query_check
from server.realtime import openapi as live
from server.runs import openapi as runs
from server.runs import openapi_operations as operations
from server.schedules import openapi as schedules
from server.security import openapi as security
from server.service import openapi as service
from server.service.openapi_security import SECURITY_SCHEMES, with_security
from server.variances import openapi as variances
from server.webhooks import openapi as webhooks

# In document order. Two parts may not define the same path or schema.
PARTS: tuple[Part, ...] = (
    components.PART,
    runs.PART,
    operations.PART,
    joblogs.PART,
    live.PART,
    service.PART,
    webhooks.PART,
    inventory.PART,
    schedules.PART,
    health.PART,
    security.PART,
    variances.PART,
    audit.PART,
)

DESCRIPTION = (
    "Tracks collector runs (batches of jobs) and their progress. Every error is a JSON object "
    '{"error": "..."}; unknown paths are 404 and unknown methods 405 (with Allow), in that shape too. '
    "Timestamps are UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ. Prose documentation: GET /api/docs."
)


def build_openapi(collectors: Iterable[str], doc_names: Iterable[str] = ()) -> dict[str, Any]:
    """The whole document for an app with these collectors and documents (by name)."""
    names = Names(collectors=sorted(collectors), docs=list(doc_names))
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for part in PARTS:
        _merge(paths, part.paths(names), "path")
        _merge(schemas, part.schemas(names), "schema")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Collector Hub", "version": __version__, "description": DESCRIPTION},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": with_security(with_query_check(paths)),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


@functools.lru_cache(maxsize=8)
def openapi_body(collectors: tuple[str, ...], doc_names: tuple[str, ...]) -> bytes:
    """The document as served, UTF-8 JSON. Kept per process for each set of collectors and
    documents: building and encoding it (about 250 KB) costs about 8 ms of CPU, which every app
    this process builds (each test's, in the suite) would otherwise pay again."""
    return json.dumps(build_openapi(collectors, doc_names)).encode()


def _merge(into: dict[str, Any], new: dict[str, Any], what: str) -> None:
    clash = sorted(into.keys() & new.keys())
    if clash:
        raise ValueError(f"OpenAPI {what} defined by two parts: {', '.join(clash)}")
    into.update(new)
