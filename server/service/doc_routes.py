"""The documentation endpoints: ``/api/docs`` (index), ``/api/docs/{name}`` (one markdown file
from ``docs/``) and ``/api/openapi.json``.

Nothing outside ``docs/`` can be served, whatever the name: the files are listed once, when the
app is built, and a request's name is only ever a key looked up in that list. It is never joined
to a path, so ``..``, encoded slashes, absolute paths and the like simply are not keys. Symlinks
and anything that is not a plain ``*.md`` file are left out of the list, and the contents are
read at that moment (without following symlinks), so later changes on disk cannot redirect a
name either. Edited documents are served after a restart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import stat
from pathlib import Path

from aiohttp import web

from server.api.http_cache import not_modified
from server.api.roles import requires
from server.errors import NotFoundError
from server.keys import REGISTRY
from server.package_data import DOCS_DIR
from server.service.openapi_document import openapi_body as encoded_openapi

log = logging.getLogger(__name__)

# Plain names only: no separators, no leading dot, nothing a shell or a URL would reinterpret.
DOC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.md$")
MAX_DOC_BYTES = 1024 * 1024
MARKDOWN = "text/markdown; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class Document:
    name: str
    title: str
    body: bytes
    etag: str


def _title_of(name: str, text: str) -> str:
    """The first level-one heading, else the file name without ``.md``."""
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return name.removesuffix(".md")


def _read_regular_file(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (not a symlink) of sane size, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_DOC_BYTES:
            return None
        return handle.read(MAX_DOC_BYTES + 1)  # one byte more reveals a file that grew


# The documents read so far in this process, by path, with what their file's status said then
# (device, inode, size, modification and change times): an app built again over the same files
# (the test suite builds hundreds) takes them from here instead of reading and hashing about
# 400 KB again, 2.5 of the 3 ms the docs routes cost an app. A file written or replaced since
# has another status, so it is read again.
_READ: dict[str, tuple[tuple[int, ...], Document]] = {}


def _status(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def load_documents(docs_dir: Path) -> dict[str, Document]:
    """The allow-list: every plain ``*.md`` file directly inside ``docs_dir``, by file name."""
    documents: dict[str, Document] = {}
    try:
        entries = sorted(os.scandir(docs_dir), key=lambda e: e.name)
    except OSError as exc:
        log.warning("documentation directory %s is unreadable: %s", docs_dir, exc)
        return documents
    for entry in entries:
        if not DOC_NAME.match(entry.name) or entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            continue
        try:
            status = _status(entry.stat(follow_symlinks=False))
        except OSError:
            continue  # gone since the listing
        known = _READ.get(entry.path)
        if known is not None and known[0] == status:
            documents[entry.name] = known[1]
            continue
        body = _read_regular_file(Path(entry.path))
        if body is None or len(body) > MAX_DOC_BYTES:
            log.warning("not serving %s: not a regular file of at most %d bytes", entry.path, MAX_DOC_BYTES)
            continue
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("not serving %s: not UTF-8", entry.path)
            continue
        etag = '"d-' + hashlib.sha256(body).hexdigest()[:16] + '"'
        document = Document(entry.name, _title_of(entry.name, text), body, etag)
        _READ[entry.path] = (status, document)
        documents[entry.name] = document
    return documents


def docs_index_json(documents: dict[str, Document]) -> dict[str, object]:
    """The body of ``GET /api/docs``."""
    return {
        "documents": [
            {"name": doc.name, "title": doc.title, "url": f"/api/docs/{doc.name}"} for doc in documents.values()
        ],
        "openapi_url": "/api/openapi.json",
    }


def setup_docs_routes(app: web.Application, docs_dir: Path = DOCS_DIR) -> None:
    """Register the documentation endpoints. Needs ``app[REGISTRY]`` (the OpenAPI document
    lists the known collectors), so call it after the registry is loaded."""
    documents = load_documents(docs_dir)
    index_body = json.dumps(docs_index_json(documents)).encode()
    # Encoded once per process for each registry and set of documents (openapi_body): the
    # document depends on nothing else, and the registry is fixed for the app's life.
    openapi_body = encoded_openapi(tuple(app[REGISTRY].keys()), tuple(documents))
    available = ", ".join(documents) or "none"

    @requires("public")
    async def docs_index(request: web.Request) -> web.Response:
        return web.Response(body=index_body, content_type="application/json")

    @requires("public")
    async def doc_file(request: web.Request) -> web.Response:
        doc = documents.get(request.match_info["name"])
        if doc is None:
            # The requested name is not echoed: it may be anything, of any length.
            raise NotFoundError(f"Document not found; available documents: {available}")
        headers = {"ETag": doc.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if not_modified(request, doc.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=doc.body, headers={**headers, "Content-Type": MARKDOWN})

    @requires("public")
    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=openapi_body, content_type="application/json")

    app.router.add_get("/api/docs", docs_index)
    app.router.add_get("/api/docs/{name}", doc_file)
    app.router.add_get("/api/openapi.json", openapi_json)
