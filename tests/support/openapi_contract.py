"""Checking real answers against the OpenAPI document the server serves."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from aiohttp.test_utils import TestClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:collector-hub:openapi"
# Statuses a test cannot provoke without breaking the server on purpose.
NOT_PROVOKED = {"500", "503", "413"}
# The `client` fixture runs open (no credentials configured) and under the rate limit; these are
# provoked against this document in tests/test_auth.py and tests/test_rate_limits.py.
NOT_PROVOKED |= {"401", "403", "429"}
# Path parameters naming nothing that exists.
UNKNOWN_BATCH = {"batch_id": "bc_00000000"}
UNKNOWN_JOB = {"job_id": "zz_00000000"}


class Contract:
    """Checks responses against the document and remembers which statuses were seen."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, DRAFT202012))
        self.seen: set[tuple[str, str, str]] = set()

    def schema_validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        # Refs at the top of an inline schema point into the document; inside components they
        # resolve against the document resource by themselves.
        rooted = json.loads(json.dumps(schema).replace('"#/components/', f'"{DOC_URI}#/components/'))
        return jsonschema.Draft202012Validator(
            rooted, registry=self.registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )

    def check_body(self, schema: dict[str, Any], body: Any, what: str) -> None:
        errors = sorted(self.schema_validator(schema).iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{what}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    async def call(self, client: TestClient, method: str, template: str, expect: int, **kwargs: Any) -> Any:
        """Send a request to ``template`` (filled from ``path``), check the answer against the
        document, and return its JSON body (or text, or None for an empty body)."""
        path = template.format(**kwargs.pop("path", {}))
        resp = await client.request(method, path, **kwargs)
        raw = await resp.read()
        what = f"{method} {path} -> {resp.status}"
        assert resp.status == expect, f"{what}, expected {expect}: {raw[:300]!r}"
        operation = self.doc["paths"][template][method.lower()]
        documented = operation["responses"].get(str(resp.status))
        assert documented is not None, f"{what}: status not documented for {method} {template}"
        self.seen.add((method, template, str(resp.status)))
        for name, header in documented.get("headers", {}).items():
            if header.get("required"):
                assert name in resp.headers, f"{what}: documented header {name} missing"
                self.check_body(header["schema"], resp.headers[name], f"{what} header {name}")
        content = documented.get("content")
        if not content:
            assert raw == b"", f"{what}: body where none is documented"
            return None
        assert resp.content_type in content, f"{what}: {resp.content_type} not in {list(content)}"
        body = json.loads(raw) if resp.content_type == "application/json" else raw.decode()
        self.check_body(content[resp.content_type]["schema"], body, what)
        return body

    def request_schema_accepts(self, template: str, body: Any) -> bool:
        schema = self.doc["paths"][template]["post"]["requestBody"]["content"]["application/json"]["schema"]
        return self.schema_validator(schema).is_valid(body)
