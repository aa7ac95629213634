"""What the documents in docs/ must say, checked against the code they describe: every key of
the collectors file and every demo setting in docs/COLLECTORS.md, and no placeholder text
anywhere (a document is either true now or says nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collectors import demo, registry
from server.package_data import DOCS_DIR

COLLECTORS_DOC = DOCS_DIR / "COLLECTORS.md"
# What a note left for later looks like: "goes here when they land", "TODO", an HTML comment
# addressed to another team ("<!-- SECURITY: ...").
PLACEHOLDERS = (
    re.compile(r"when (?:they|it) lands?", re.IGNORECASE),
    re.compile(r"\bgoes here\b|\bgo here\b", re.IGNORECASE),
    re.compile(r"\b(?:TODO|TBD|FIXME|XXX)\b"),
    re.compile(r"<!--\s*[A-Z][A-Z ]+:"),
    re.compile(r"\bcoming soon\b|\bnot yet documented\b", re.IGNORECASE),
)


def table_keys(heading: str) -> set[str]:
    """The first-column keys (``| `key` | ...``) of the first table under ``heading`` in
    docs/COLLECTORS.md."""
    lines = COLLECTORS_DOC.read_text().splitlines()
    start = lines.index(heading)
    start = next(n for n in range(start, len(lines)) if lines[n].startswith("|"))
    keys = set()
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        match = re.match(r"^\| `([A-Za-z0-9_]+)` \|", line)
        assert match, f"a row of the table under {heading!r} does not start with a `key`: {line}"
        keys.add(match[1])
    return keys


def file_keys() -> set[str]:
    return table_keys("## The collectors file")


def test_every_key_the_collectors_file_accepts_is_documented() -> None:
    missing = [k for k in (*registry.FILE_KEYS, *registry.ENTRY_KEYS) if k not in file_keys()]
    assert not missing, f"docs/COLLECTORS.md has no table row for collectors-file key(s): {missing}"


def test_every_documented_key_is_one_the_registry_accepts() -> None:
    """The other way round: a documented key the registry refuses is a document that lies."""
    assert file_keys() <= {*registry.FILE_KEYS, *registry.ENTRY_KEYS}


def test_every_demo_setting_is_documented() -> None:
    documented = table_keys("## The demo collector")
    assert documented == set(demo.SETTINGS)
    # ...and the demo reads exactly those.
    assert set(re.findall(r'"(DEMO_[A-Z_]+)"', Path(demo.__file__).read_text())) == set(demo.SETTINGS)


@pytest.mark.parametrize("path", sorted(DOCS_DIR.glob("*.md")), ids=lambda p: p.name)
def test_no_document_holds_placeholder_text(path) -> None:
    found = [
        f"line {n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if any(p.search(line) for p in PLACEHOLDERS)
    ]
    assert not found, f"{path.name} holds placeholder text:\n" + "\n".join(found)


def test_the_readme_says_serve_keeps_its_terminal() -> None:
    """A new user ran `collector-hub serve`, then `pytest` in the same terminal, and waited."""
    setup = (DOCS_DIR.parent / "README.md").read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    assert "keeps the terminal" in setup and "second terminal" in setup
