"""One copy of each fact: the statuses, priorities, id patterns, shared environment names and
limits are defined in collectors/contract.py and nowhere else in the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from collectors import contract

REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / "collectors" / "contract.py"
SOURCES = sorted(p for d in ("server", "collectors") for p in (REPO / d).rglob("*.py") if p != CONTRACT)


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _defined_collections(path: Path) -> list[tuple[int, frozenset[str]]]:
    """Every tuple, list or set literal of plain strings in the module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and node.elts:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(values) == len(node.elts):
                found.append((node.lineno, frozenset(values)))
    return found


FACT_SETS = {
    "job statuses": frozenset(contract.JOB_STATUSES),
    "terminal statuses": contract.TERMINAL_STATUSES,
    "reportable statuses": frozenset(contract.REPORTABLE_STATUSES),
    "priorities": frozenset(contract.PRIORITIES),
    "roles": frozenset(contract.ROLES),
    "grantable roles": frozenset(contract.GRANTABLE_ROLES),
}


@pytest.mark.parametrize("fact", sorted(FACT_SETS))
def test_status_and_priority_lists_are_only_in_the_contract(fact: str) -> None:
    copies = [
        f"{path.relative_to(REPO)}:{line}"
        for path in SOURCES
        for line, values in _defined_collections(path)
        if values == FACT_SETS[fact]
    ]
    assert copies == [], f"{fact} restated outside collectors/contract.py"


@pytest.mark.parametrize(
    "pattern", [contract.BATCH_ID.pattern, contract.JOB_ID.pattern, contract.JOB_ID_ENV, contract.DATABASE_URL_ENV]
)
def test_ids_and_environment_names_are_only_in_the_contract(pattern: str) -> None:
    copies = [
        f"{path.relative_to(REPO)}:{line}"
        for path in SOURCES
        for line, value in _string_constants(path)
        if value == pattern
    ]
    assert copies == [], f"{pattern!r} restated outside collectors/contract.py"


def test_the_webhook_secret_pattern_is_defined_once() -> None:
    copies = [
        f"{path.relative_to(REPO)}:{line}"
        for path in SOURCES
        for line, value in _string_constants(path)
        if value.startswith("^whsec_")
    ]
    assert [c.split(":")[0] for c in copies] == ["server/webhooks/signing.py"]


def test_retry_after_is_parsed_in_one_place() -> None:
    readers = [
        str(path.relative_to(REPO))
        for path in SOURCES
        if re.search(r"parsedate_to_datetime|float\([^)]*Retry-After", path.read_text())
    ]
    assert readers == ["collectors/retry_after.py"]


def test_the_server_uses_the_contract_values() -> None:
    from server.api import validation
    from server.openapi import document

    assert validation.check_job_id.__module__ == "server.api.validation"
    doc = document.build_openapi({})
    assert doc["components"]["schemas"]["Status"]["enum"] == list(contract.JOB_STATUSES)
    assert doc["components"]["schemas"]["BatchId"]["pattern"] == contract.BATCH_ID.pattern
