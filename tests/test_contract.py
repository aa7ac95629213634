"""One copy of each fact: the statuses, priorities, id patterns, shared environment names and
limits are defined in collectors/contract.py and nowhere else in the code."""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collectors import contract
from collectors.progress import check_update
from server.audit.entry import OUTCOMES as AUDIT_OUTCOMES
from server.cli.progress import percent_argument
from server.runner.protocol import StdoutProgress, parse_progress_line

REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / "collectors" / "contract.py"
SOURCES = sorted(p for d in ("server", "collectors") for p in (REPO / d).rglob("*.py") if p != CONTRACT)


# Each source file is parsed and walked once per run, not once per test: a dozen tests look
# through the same 200 files (about 0.7 s of CPU for each look).
@functools.cache
def _string_constants(path: Path) -> tuple[tuple[int, str], ...]:
    tree = ast.parse(path.read_text(), str(path))
    return tuple(
        (n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


@functools.cache
def _defined_collections(path: Path) -> tuple[tuple[int, frozenset[str]], ...]:
    """Every tuple, list or set literal of plain strings in the module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and node.elts:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(values) == len(node.elts):
                found.append((node.lineno, frozenset(values)))
    return tuple(found)


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
    assert [c.split(":")[0] for c in copies] == ["server/webhooks/rules/signing.py"]


def test_retry_after_is_parsed_in_one_place() -> None:
    readers = [
        str(path.relative_to(REPO))
        for path in SOURCES
        if re.search(r"parsedate_to_datetime|float\([^)]*Retry-After", path.read_text())
    ]
    assert readers == ["collectors/retry_after.py"]


def test_the_server_uses_the_contract_values() -> None:
    from server.api import validation
    from server.service import openapi_document as document

    assert validation.check_job_id.__module__ == "server.api.validation"
    doc = document.build_openapi({})
    assert doc["components"]["schemas"]["Status"]["enum"] == list(contract.JOB_STATUSES)
    assert doc["components"]["schemas"]["BatchId"]["pattern"] == contract.BATCH_ID.pattern


# The browser side (static/): the client library exports the contract's lists a page needs, as
# JSON-compatible literals, and every page imports them from it.
STATIC = REPO / "static"
CLIENT_LIBRARY = STATIC / "collector-hub-client.js"
_JS_STRING = r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""
_JS_ARRAY = re.compile(rf"\[\s*((?:{_JS_STRING})(?:\s*,\s*(?:{_JS_STRING}))*)\s*,?\s*\]")
_LIBRARY_CONSTANT = re.compile(r'^export const ([A-Z_]+) = (?:Object\.freeze\((\[[^\]\n]*\])\)|("[^"\n]*"));$', re.M)


def _library_constants() -> dict[str, object]:
    text = CLIENT_LIBRARY.read_text()
    return {name: ast.literal_eval(array or string) for name, array, string in _LIBRARY_CONSTANT.findall(text)}


def test_the_browser_library_exports_the_contract_values() -> None:
    constants = _library_constants()
    assert constants["JOB_STATUSES"] == list(contract.JOB_STATUSES)
    assert constants["TERMINAL_STATUSES"] == [s for s in contract.JOB_STATUSES if s in contract.TERMINAL_STATUSES]
    assert constants["PRIORITIES"] == list(contract.PRIORITIES)
    assert constants["DEFAULT_PRIORITY"] == contract.DEFAULT_PRIORITY
    assert constants["AUDIT_OUTCOMES"] == list(AUDIT_OUTCOMES)


# The lists a page may need: the contract's, and the audit trail's outcomes (the admin page's filter).
STATIC_FACT_SETS = {**FACT_SETS, "audit outcomes": frozenset(AUDIT_OUTCOMES)}


def _static_copies(path: Path, text: str) -> list[str]:
    """Where ``text`` restates a status or priority list: an array literal of exactly its values,
    or all of a list's values (three or more) written as strings somewhere in the file."""
    found = []
    for match in _JS_ARRAY.finditer(text):
        values = frozenset(v[1:-1] for v in re.findall(_JS_STRING, match.group(1)))
        line = text.count("\n", 0, match.start()) + 1
        found += [
            f"{path.relative_to(REPO)}:{line} ({fact})" for fact, facts in STATIC_FACT_SETS.items() if values == facts
        ]
    strings = {v[1:-1] for v in re.findall(_JS_STRING, text)}
    found += [
        f"{path.relative_to(REPO)} ({fact}, value by value)"
        for fact, facts in STATIC_FACT_SETS.items()
        if len(facts) >= 3 and facts <= strings
    ]
    return found


def test_static_files_restate_no_status_or_priority_list() -> None:
    copies = []
    for path in sorted(p for p in STATIC.rglob("*") if p.suffix in (".js", ".html")):
        text = path.read_text()
        if path == CLIENT_LIBRARY:
            text = _LIBRARY_CONSTANT.sub("", text)  # its exports are the browser's one copy
        copies += _static_copies(path, text)
    assert copies == [], "import them from static/collector-hub-client.js"


@pytest.mark.parametrize(
    "snippet",
    [
        'const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];',
        "new Set(['completed', 'failed', 'cancelled'])",
        'h("option", { value: "high" }, "High"), h("option", { value: "normal" }), h("option", { value: "low" })',
        'const OUTCOMES = ["succeeded", "refused", "failed"];',
    ],
)
def test_the_static_check_finds_a_copy(snippet: str) -> None:
    assert _static_copies(STATIC / "console" / "views" / "example.js", snippet) != []


# The one rule for a progress percent (collectors/contract.py, ``checked_percent``), as each
# entry point takes it: (what is sent, the percent recorded, or None when it is refused).
PERCENT_NUMBERS = [
    (0, 0),
    (100, 100),
    (50, 50),
    (50.0, 50),  # JSON has one number type: an integral number is that integer
    (100.0, 100),
    (50.5, None),
    (-1, None),
    (101, None),
    (True, None),
    ("50", None),
]
# Where the percent is text (a plain ``@progress`` line, ``collector-hub progress``): digits.
PERCENT_TEXTS = [
    ("0", 0),
    ("100", 100),
    ("050", 50),
    ("50.0", None),
    ("101", None),
    ("-1", None),
    ("+50", None),
    ("5_0", None),
    ("fifty", None),
    ("\u0665\u0660", None),  # fifty in Arabic-Indic digits: int() reads it, the rule does not
]


def _recorded(parse: Callable[[Any], Any], value: Any) -> int | None:
    """The percent ``parse`` makes of ``value``; None when it refuses it (raises ValueError, as
    ProgressError does, or finds no progress report in a stdout line)."""
    try:
        found = parse(value)
    except ValueError:
        return None
    return found.percent if isinstance(found, StdoutProgress) else found


def _json_stdout_line(value: Any) -> StdoutProgress | None:
    return parse_progress_line(f'@progress {{"percent": {json.dumps(value)}}}')


def _plain_stdout_line(text: str) -> StdoutProgress | None:
    return parse_progress_line(f"@progress {text} message")


PERCENT_ENTRY_POINTS: dict[str, tuple[list[tuple[Any, int | None]], list[Callable[[Any], Any]]]] = {
    "numbers": (
        PERCENT_NUMBERS,
        [contract.checked_percent, lambda v: check_update("de_00000001", "running", v, None)[2], _json_stdout_line],
    ),
    "digits": (PERCENT_TEXTS, [contract.percent_from_text, _plain_stdout_line, percent_argument]),
}


@pytest.mark.parametrize(
    ("given", "expected", "entry_points"),
    [(given, expected, kind) for kind, (cases, _) in PERCENT_ENTRY_POINTS.items() for given, expected in cases],
)
def test_a_percent_follows_one_rule_in_python_on_stdout_and_the_command_line(
    given: Any, expected: int | None, entry_points: str
) -> None:
    """Numbers: the Python API and a JSON stdout line; digits: a plain stdout line and
    ``collector-hub progress``."""
    assert [_recorded(parse, given) for parse in PERCENT_ENTRY_POINTS[entry_points][1]] == [expected] * 3


async def test_a_percent_number_follows_one_rule_over_http(client) -> None:  # type: ignore[no-untyped-def]
    created = await client.post("/api/collectors/run", json={"collectors": ["demo"]})
    job_id = (await created.json())["collectors"][0]["job_id"]
    for value, expected in PERCENT_NUMBERS:
        resp = await client.post(
            f"/api/collectors/runs/job/{job_id}/progress", json={"status": "running", "progress_percent": value}
        )
        if expected is None:
            assert resp.status == 400, value
            assert "progress_percent must be an integer from 0 to 100" in (await resp.json())["error"]
        else:
            assert resp.status == 200, value
            assert (await resp.json())["progress_percent"] == expected
