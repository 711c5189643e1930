"""Dependencies point inward: core never imports a channel (see ARCHITECTURE.md)."""

from __future__ import annotations

import ast
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
