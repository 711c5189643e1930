"""Dependencies point inward: core never imports a channel, core's files and folders import one
another without cycles, and bench/ imports nothing from tests/ (see ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = ("aiohttp.web", "telegram", "ussd", "bot", "airgate", "typer", "rich")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "core").rglob("*.py")), ids=str)
def test_core_imports_no_channel(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        for banned in FORBIDDEN_IN_CORE
        if name == banned or name.startswith(banned + ".")
    }
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


# -- no import cycles ---------------------------------------------------------------------------
# A cycle makes two modules one thing a reader must hold at once, and is "solved" by an import
# inside a function. Folders: core's sub-packages, and core's top-level modules each on its own
# (core/context.py, core/errors.py, ...), must import one another in one direction only; files:
# no two modules may reach each other, whatever the folder.


@pytest.mark.parametrize("path", sorted((ROOT / "bench").rglob("*.py")), ids=str)
def test_bench_imports_nothing_from_tests(path: Path) -> None:
    """A benchmark measures the product: what it needs from a stand-in lives in sandbox/."""
    bad = {name for name in _imports(path) if name == "tests" or name.startswith("tests.")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


CORE_MODULES = {_module_name(p): p for p in sorted((ROOT / "core").rglob("*.py"))}


def _core_module(name: str) -> str | None:
    """The core module ``name`` lives in (``core.ledger.Ledger`` → ``core.ledger``), if any."""
    while name and name not in CORE_MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:``: an import for the type
    checker alone runs never, so it makes no cycle (and needs no import inside a function)."""
    found: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def _module_graph() -> dict[str, set[str]]:
    """Each core module → the core modules it imports (``from a import b`` reaches ``a.b`` when
    that is a module, else ``a``), anywhere in the file, in a function or not, except for the
    type checker alone (``if TYPE_CHECKING:``)."""
    graph: dict[str, set[str]] = {}
    for name, path in CORE_MODULES.items():
        imported: set[str | None] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(_core_module(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.update(_core_module(f"{node.module}.{a.name}") for a in node.names)
        graph[name] = {target for target in imported if target and target != name}
    return graph


def _folder(module: str) -> str:
    """``core.services.stock`` → ``core.services``; ``core.context`` → itself."""
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_core_files_import_no_cycle() -> None:
    assert _cycles(_module_graph()) == []


def test_core_folders_import_no_cycle() -> None:
    folders: dict[str, set[str]] = {}
    for module, targets in _module_graph().items():
        mine = _folder(module)
        folders.setdefault(mine, set()).update(_folder(t) for t in targets if _folder(t) != mine)
    assert _cycles(folders) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The check above cannot pass by finding nothing: it sees a cycle of three, and no cycle in
    a chain."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


# -- what a CLI command pays for at start -------------------------------------------------------
# Every `airgate …` command imports the whole CLI: the PDF library and the server's parts are
# imported where they are used (a settlement's PDF, `airgate bot`, `airgate serve`), not there.
NOT_AT_CLI_START = ("fpdf", "airgate.server", "api.app", "matplotlib")


def test_the_cli_starts_without_the_pdf_library_or_the_server() -> None:
    probe = "import sys, airgate.cli; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.split()
    )
    assert not loaded & set(NOT_AT_CLI_START), sorted(loaded & set(NOT_AT_CLI_START))
