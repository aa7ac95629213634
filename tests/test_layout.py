"""The shape of the code (docs/ARCHITECTURE.md): small modules, no import cycle, imports at the
top of a module (only the CLI entry point imports the chosen sub-command late)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "collectors")
MAX_LINES = 400
# The one place allowed to import late: `collector-hub progress` must not pay for the server.
LATE_IMPORTS_ALLOWED = {"server/cli/main.py"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(path: Path, name: str) -> set[str]:
    """Project modules that ``name`` imports, anywhere in the file (TYPE_CHECKING included:
    a cycle hidden from the interpreter is still one for the reader)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            targets.add(node.module)
            targets.update(f"{node.module}.{alias.name}" for alias in node.names)
    edges = set()
    for target in targets:
        # Importing a.b.c runs a/__init__ and a/b/__init__ too.
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in MODULES and candidate != name:
                edges.add(candidate)
    return edges


def test_no_module_is_over_the_size_limit() -> None:
    long = {
        str(path.relative_to(REPO)): n
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines)"


def test_there_is_no_import_cycle() -> None:
    graph = {name: _imported(path, name) for name, path in MODULES.items()}
    # Packages are not cycles with their own modules when __init__ is empty of imports.
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_are_at_the_top_of_the_module(name: str) -> None:
    path = MODULES[name]
    relative = str(path.relative_to(REPO))
    if relative in LATE_IMPORTS_ALLOWED:
        return
    tree = ast.parse(path.read_text(), relative)
    late = [
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert late == [], f"{relative}: imports inside functions at lines {late}"


def test_package_init_files_import_nothing() -> None:
    """A package's __init__ runs whenever any of its modules is imported; an import or a
    function there is how hidden cycles start. A docstring (a map of the package) and plain
    constants are fine."""
    busy = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in MODULES.values()
        if path.name == "__init__.py"
        for node in ast.parse(path.read_text()).body
        if not isinstance(node, ast.Expr | ast.Assign)
    ]
    assert busy == []
