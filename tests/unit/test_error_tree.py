"""The tree drawn in core/errors.py's docstring is the real one: every AirGate error, wherever it
is defined, is drawn under its parent, nothing drawn is stale, and every other exception class in
core/ is private to its module or named there as a signal that never crosses a service."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import core.errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "bot", "ussd", "airgate")


def _classes() -> dict[str, tuple[list[str], Path]]:
    """Every class of our packages: name → (base names, file)."""
    found: dict[str, tuple[list[str], Path]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
                    found[node.name] = (bases, path)
    return found


CLASSES = _classes()


def _ancestors(name: str) -> list[str]:
    """``name``'s bases up to a built-in exception, nearest first (first base only)."""
    chain = []
    while name in CLASSES and CLASSES[name][0]:
        name = CLASSES[name][0][0]
        chain.append(name)
    return chain


def _is_exception(name: str) -> bool:
    return any(a in ("Exception", "BaseException") or a.endswith("Error") for a in _ancestors(name))


def _drawn() -> dict[str, str]:
    """The tree in the docstring: each name → its parent's name (by indentation)."""
    doc = core.errors.__doc__ or ""
    parents: dict[int, str] = {}
    drawn: dict[str, str] = {}
    indent = 0
    for line in doc.splitlines():
        if line.strip() == "AirGateError":
            parents[0], indent = "AirGateError", line.index("A")
        elif match := re.match(r"^(\s*[│ ]*)[├└]── (\w+)", line):
            depth = (len(match.group(1)) - indent) // 4
            drawn[match.group(2)] = parents[depth]
            parents[depth + 1] = match.group(2)
    return drawn


def test_every_airgate_error_is_drawn_under_its_parent() -> None:
    errors = {
        name: next(a for a in _ancestors(name) if not a.startswith("_"))
        for name in CLASSES
        if "AirGateError" in _ancestors(name) and not name.startswith("_")
    }
    drawn = _drawn()
    assert sorted(set(errors) - set(drawn)) == [], "not drawn in core/errors.py"
    assert sorted(set(drawn) - set(errors)) == [], "drawn but not defined"
    assert {n: p for n, p in errors.items() if drawn[n] != p} == {}, "drawn under another parent"


def test_other_exceptions_in_core_are_private_or_named_signals() -> None:
    """A public exception of core that is not an AirGateError must be named in the docstring's
    paragraph on signals (what it is, and who turns it into an AirGate error)."""
    doc = core.errors.__doc__ or ""
    signals = doc[doc.index("Signals") :]
    loose = [
        name
        for name, (_, path) in CLASSES.items()
        if path.is_relative_to(ROOT / "core")
        and _is_exception(name)
        and "AirGateError" not in _ancestors(name)
        and name != "AirGateError"
        and not name.startswith("_")
        and f"``{name}``" not in signals
    ]
    assert loose == []


def test_the_tree_reader_reads_depth() -> None:
    """The check cannot pass by reading nothing: it finds the tree's known edges."""
    drawn = _drawn()
    assert drawn["InputError"] == "AirGateError"
    assert drawn["InvalidPin"] == "InputError"
    assert drawn["ProviderUnavailable"] == "ProviderError"
