"""The shape of the code (docs/ARCHITECTURE.md): small modules, no import cycle, packages that
depend one way (the layers), imports at the top of a module (only the CLI entry point imports
the chosen sub-command late)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
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


def _imported_modules(path: Path) -> set[str]:
    """The project modules ``path`` imports, each the deepest one named (``from a.b import c``
    is module ``a.b.c`` when that is a module, else ``a.b``), TYPE_CHECKING included. Unlike
    ``_imported``, the packages' ``__init__`` files the import runs on the way do not count:
    they import nothing (``test_package_init_files_import_nothing``)."""

    def deepest(dotted: str) -> str | None:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            if (candidate := ".".join(parts[:i])) in MODULES:
                return candidate
        return None

    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(deepest(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(deepest(f"{node.module}.{alias.name}") for alias in node.names)
    return {name for name in found if name is not None}


def package_of(name: str) -> str:
    """The package a module counts in for the layers: the innermost folder holding it (a
    package's ``__init__`` is the package); a module directly under ``server/`` is one of its own."""
    if MODULES[name].name == "__init__.py":
        return name
    parent = name.rpartition(".")[0]
    return name if parent == "server" else parent


def layers() -> list[list[str]]:
    """The ordered list of docs/ARCHITECTURE.md's "The layers", lowest first: the packages
    named in backquotes before each item's colon."""
    section = ARCHITECTURE.read_text().split("### The layers\n", 1)[1].split("\n#", 1)[0]
    items = re.findall(r"^(\d+)\. (.*?): ", section, re.M)
    assert [int(n) for n, _ in items] == list(range(1, len(items) + 1)), "the layers are numbered 1, 2, 3, ..."
    return [re.findall(r"`([\w.]+)`", names) for _, names in items]


def test_every_package_is_in_exactly_one_layer() -> None:
    listed = [package for layer in layers() for package in layer]
    packages = {package_of(name) for name in MODULES}
    assert sorted(p for p in set(listed) if listed.count(p) > 1) == [], "listed in more than one layer"
    assert sorted(packages - set(listed)) == [], "add these packages to a layer in docs/ARCHITECTURE.md"
    assert sorted(set(listed) - packages) == [], "docs/ARCHITECTURE.md lists packages that do not exist"


def test_packages_import_only_from_lower_layers() -> None:
    """A package-level DAG, written down: an import from a package to one in the same or a
    higher layer is a dependency the wrong way (a cycle waiting to happen, or a layer that
    knows about the ones above it). A lower layer that needs something from a higher one
    gets it through a seam the app fills in, like ``server/realtime/sources.py``."""
    layer_of = {package: n for n, layer in enumerate(layers(), start=1) for package in layer}
    wrong = sorted(
        f"{name} ({layer_of[package_of(name)]}) imports {target} ({layer_of[package_of(target)]})"
        for name, path in MODULES.items()
        for target in _imported_modules(path)
        if package_of(target) != package_of(name)
        and layer_of.get(package_of(target), 0) >= layer_of.get(package_of(name), 0) > 0  # unlisted: the test above
    )
    assert wrong == [], "imports against the layers of docs/ARCHITECTURE.md:\n" + "\n".join(wrong)


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


def test_tests_take_helpers_from_support_modules_never_from_another_test_module() -> None:
    """A helper two test modules share lives in tests/support/ (or a fixture in a conftest.py):
    importing it from another test module runs and couples that module's tests too."""
    borrowed = sorted(
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / "tests").rglob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom | ast.Import)
        for module in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])
        if module.startswith("tests.") and module.rpartition(".")[2].startswith("test_")
    )
    assert borrowed == [], "move these helpers to tests/support/"
