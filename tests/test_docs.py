"""The documentation endpoints: the index, each document, and that nothing outside docs/ is ever
served, whatever the name (requests are sent as raw bytes so no client normalizes them first)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from collectors.registry import load_registry
from server.api.middleware import json_errors
from server.keys import REGISTRY
from server.package_data import DOCS_DIR
from server.security.cors import is_preflight_route
from server.service.doc_routes import setup_docs_routes

REPO = Path(__file__).resolve().parent.parent
REQUIRED_DOCS = {
    "COLLECTOR_RUN_TRACKING_API.md",
    "DASHBOARD_AI_COLLECTOR_TRACKING_GUIDE.md",
    "DASHBOARD_AI_PROMPT.md",
}
# Text from files outside docs/ that must never appear in an answer.
SECRET_MARKERS = ("root:x:0:0", "from setuptools import", "[build-system]", "CREATE SEQUENCE", "TOP SECRET")


def served_doc_files(docs_dir: Path) -> set[str]:
    return {p.name for p in docs_dir.glob("*.md") if p.is_file() and not p.is_symlink()}


async def raw_get(client: TestClient, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``target`` byte for byte (no URL normalization); returns status, headers, body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode("latin-1"))
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_refused_without_leak(status: int, headers: dict[str, str], body: bytes, target: str) -> None:
    text = body.decode("utf-8", "replace")
    for marker in SECRET_MARKERS:
        assert marker not in text, f"{target!r} leaked {marker!r}"
    assert status in (400, 404), f"{target!r} answered {status}: {text[:200]}"
    assert headers["content-type"].startswith("application/json"), f"{target!r}: {headers['content-type']}"
    assert isinstance(json.loads(body)["error"], str)


@pytest.fixture
async def docs_only_client(aiohttp_client, tmp_path: Path) -> AsyncIterator[tuple[TestClient, Path]]:  # type: ignore[no-untyped-def]
    """An app with only the docs routes, over a docs/ directory the test arranges (no database)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "GOOD.md").write_text("# Good document\n\nServed.\n")
    outside = tmp_path / "outside.md"
    outside.write_text("# TOP SECRET\n")
    os.symlink(outside, docs / "LINK_OUT.md")  # a symlink pointing outside docs/
    os.symlink("/etc/passwd", docs / "PASSWD.md")
    os.symlink(docs / "GOOD.md", docs / "LINK_IN.md")  # even one pointing inside is not served
    (docs / "sub").mkdir()
    (docs / "sub" / "NESTED.md").write_text("# TOP SECRET nested\n")
    (docs / "notes.txt").write_text("TOP SECRET text\n")
    (docs / ".HIDDEN.md").write_text("# TOP SECRET hidden\n")
    (docs / "LATIN1.md").write_bytes(b"# caf\xe9\n")
    os.mkfifo(docs / "FIFO.md")  # opening a FIFO must not hang the app factory
    app = web.Application(middlewares=[json_errors])
    app[REGISTRY] = load_registry()
    setup_docs_routes(app, docs)
    yield await aiohttp_client(app), docs


async def test_index_lists_every_document_in_docs(client):
    resp = await client.get("/api/docs")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.json()
    names = [doc["name"] for doc in body["documents"]]
    assert set(names) == served_doc_files(DOCS_DIR)
    assert REQUIRED_DOCS <= set(names)
    assert body["openapi_url"] == "/api/openapi.json"
    for doc in body["documents"]:
        assert doc["url"] == f"/api/docs/{doc['name']}"
        assert doc["title"] and not doc["title"].startswith("#")


@pytest.mark.parametrize("name", sorted(REQUIRED_DOCS))
async def test_each_document_is_served_as_utf8_markdown(client, name):
    resp = await client.get(f"/api/docs/{name}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await resp.read() == (DOCS_DIR / name).read_bytes()


async def test_every_listed_document_is_served_and_titled_by_its_heading(client):
    index = await (await client.get("/api/docs")).json()
    for doc in index["documents"]:
        resp = await client.get(doc["url"])
        assert resp.status == 200, doc
        text = await resp.text()
        assert f"# {doc['title']}" in text


async def test_document_etag_answers_304(client):
    resp = await client.get("/api/docs/DASHBOARD_AI_PROMPT.md")
    etag = resp.headers["ETag"]
    again = await client.get("/api/docs/DASHBOARD_AI_PROMPT.md", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    other = await client.get("/api/docs/DASHBOARD_AI_PROMPT.md", headers={"If-None-Match": '"d-0"'})
    assert other.status == 200


async def test_the_api_reference_mentions_every_route(client):
    # Same idea as the OpenAPI coverage test, for people: each route appears as "METHOD /path".
    reference = (DOCS_DIR / "COLLECTOR_RUN_TRACKING_API.md").read_text()
    missing = sorted(
        f"{route.method} {route.resource.canonical}"
        for route in client.app.router.routes()
        if route.method != "HEAD"
        and not is_preflight_route(route)
        and route.resource is not None
        and not isinstance(route.resource, web.StaticResource)
        and f"{route.method} {route.resource.canonical}" not in reference
    )
    assert not missing, (
        "Routes not described in docs/COLLECTOR_RUN_TRACKING_API.md: "
        + ", ".join(missing)
        + ". Add them to its endpoint table and give each a section."
    )


TRAVERSAL_TARGETS = [
    "/api/docs/../setup.py",
    "/api/docs/../../../../../../etc/passwd",
    "/api/docs/..%2fsetup.py",
    "/api/docs/..%2Fsetup.py",
    "/api/docs/%2e%2e%2fsetup.py",
    "/api/docs/%2e%2e/setup.py",
    "/api/docs/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/docs/%252e%252e%252fsetup.py",  # double encoding
    "/api/docs/%25252e%25252e%25252fsetup.py",  # triple
    "/api/docs/..%252fsetup.py",
    "/api/docs//etc/passwd",
    "/api/docs/%2fetc%2fpasswd",
    "/api/docs/%2Fwork%2Fmain%2Fsetup.py",
    "/api/docs/..\\setup.py",
    "/api/docs/..%5csetup.py",
    "/api/docs/..%5c..%5c..%5cetc%5cpasswd",
    "/api/docs/C:%5cWindows%5cwin.ini",
    "/api/docs/DASHBOARD_AI_PROMPT.md%00",
    "/api/docs/..%2fsetup.py%00.md",
    "/api/docs/%00",
    "/api/docs/DASHBOARD_AI_PROMPT",  # no .md
    "/api/docs/dashboard_ai_prompt.md",  # names are exact
    "/api/docs/./DASHBOARD_AI_PROMPT.md/..%2f..%2fsetup.py",
    "/api/docs/.",
    "/api/docs/..",
    "/api/docs/%2e%2e",
    "/api/docs/....%2f%2fsetup.py",
    "/api/docs/..;/setup.py",
    "/api/docs/%c0%ae%c0%ae%c0%afsetup.py",  # overlong UTF-8 dots and slash
    "/api/docs/%ff%fe",
    "/api/docs/~root",
    "/api/docs/setup.py",
    "/api/docs/pyproject.toml",
    "/api/docs/" + "A" * 4000 + ".md",  # very long (the HTTP parser's line limit is 8190)
    "/api/docs/" + "../" * 500 + "etc/passwd",
    "/api/docs/" + "..%2f" * 500 + "etc%2fpasswd",
]


async def test_traversal_attempts_never_serve_anything_outside_docs(client):
    for target in TRAVERSAL_TARGETS:
        status, headers, body = await raw_get(client, target)
        assert_refused_without_leak(status, headers, body, target)


async def test_a_raw_nul_byte_in_the_request_line_is_refused(client):
    # The HTTP parser refuses it before any route runs, so the answer is aiohttp's plain 400.
    status, _, body = await raw_get(client, "/api/docs/\x00")
    assert status == 400
    assert not any(marker in body.decode("latin-1") for marker in SECRET_MARKERS)


async def test_absolute_url_in_request_line_does_not_escape(client):
    status, headers, body = await raw_get(client, "http://test/api/docs/..%2f..%2fsetup.py")
    assert_refused_without_leak(status, headers, body, "absolute-form")


async def test_only_plain_markdown_files_directly_in_docs_are_listed(docs_only_client):
    client, _ = docs_only_client
    index = await (await client.get("/api/docs")).json()
    assert [doc["name"] for doc in index["documents"]] == ["GOOD.md"]
    assert index["documents"][0]["title"] == "Good document"


async def test_symlinks_subdirectories_and_other_files_are_not_served(docs_only_client):
    client, _ = docs_only_client
    for target in (
        "/api/docs/LINK_OUT.md",
        "/api/docs/PASSWD.md",
        "/api/docs/LINK_IN.md",
        "/api/docs/sub%2fNESTED.md",
        "/api/docs/sub/NESTED.md",
        "/api/docs/notes.txt",
        "/api/docs/.HIDDEN.md",
        "/api/docs/LATIN1.md",
        "/api/docs/FIFO.md",
        "/api/docs/..%2foutside.md",
    ):
        status, headers, body = await raw_get(client, target)
        assert_refused_without_leak(status, headers, body, target)
    status, _, body = await raw_get(client, "/api/docs/GOOD.md")
    assert (status, body) == (200, b"# Good document\n\nServed.\n")


async def test_changes_on_disk_after_start_cannot_redirect_a_name(docs_only_client):
    client, docs = docs_only_client
    (docs / "GOOD.md").unlink()
    os.symlink("/etc/passwd", docs / "GOOD.md")
    os.symlink("/etc/passwd", docs / "NEW.md")
    status, _, body = await raw_get(client, "/api/docs/GOOD.md")
    assert (status, body) == (200, b"# Good document\n\nServed.\n")
    status, headers, body = await raw_get(client, "/api/docs/NEW.md")
    assert_refused_without_leak(status, headers, body, "NEW.md")


async def test_not_found_error_lists_the_available_documents_without_echoing_the_name(docs_only_client):
    client, _ = docs_only_client
    resp = await client.get("/api/docs/NOPE_<script>.md")
    assert resp.status == 404
    error = (await resp.json())["error"]
    assert "GOOD.md" in error and "<script>" not in error


async def test_a_missing_docs_directory_gives_an_empty_index(aiohttp_client, tmp_path):
    app = web.Application(middlewares=[json_errors])
    app[REGISTRY] = load_registry()
    setup_docs_routes(app, tmp_path / "missing")
    client = await aiohttp_client(app)
    assert (await (await client.get("/api/docs")).json())["documents"] == []


async def test_a_document_edited_on_disk_is_served_by_the_next_app_built(aiohttp_client, tmp_path):
    """An app reads the documents when it is built; one built later in the same process serves
    what is on disk then, whether the file was rewritten in place or replaced."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "A.md").write_text("# First\n")
    (docs / "B.md").write_text("# Kept\n")

    async def served(name: str) -> bytes:
        app = web.Application(middlewares=[json_errors])
        app[REGISTRY] = load_registry()
        setup_docs_routes(app, docs)
        client = await aiohttp_client(app)
        return await (await client.get(f"/api/docs/{name}")).read()

    assert await served("A.md") == b"# First\n"
    (docs / "A.md").write_text("# Second, longer\n")  # rewritten in place
    assert await served("A.md") == b"# Second, longer\n"
    (docs / "A.md.new").write_text("# Third, same len\n")
    os.replace(docs / "A.md.new", docs / "A.md")  # replaced by another file
    assert await served("A.md") == b"# Third, same len\n"
    assert await served("B.md") == b"# Kept\n"
