"""The aggregator port speaks AirGate's terms; an aggregator's own stay inside its adapter.

Issue 15 adds a second aggregator beside Reloadly: that must be a new module under
core/providers/ and one registry entry, with nothing of Reloadly's vocabulary to unpick elsewhere.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from core.providers import port

ROOT = Path(__file__).resolve().parents[2]
# Reloadly's own words: its operator ids, its idempotency field, its statuses, its OAuth.
RELOADLY_TERMS = re.compile(
    r"operator_id\b|operatorId|customIdentifier|\bPROCESSING\b|\bSUCCESSFUL\b|REFUNDED|oauth"
    r"|client_secret|auth_url|reloadly_wire|ReloadlyProvider",
    re.IGNORECASE,
)
# Where those words belong: the adapter, the registry naming it, and the history of the schema.
ALLOWED = (
    "core/providers/reloadly.py",
    "core/providers/reloadly_wire.py",
    "core/providers/registry.py",
    "core/migrations/",
    "core/settings.py",  # the adapter's settings are read by name there (AIRGATE_PROVIDER_*)
    "core/logging.py",  # masks every secret setting by name
)


def _core_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "core").rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _core_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_speaks_no_aggregators_terms(path: Path) -> None:
    name = path.relative_to(ROOT).as_posix()
    if name.startswith(ALLOWED):
        return
    lines = [line for line in path.read_text().splitlines() if "# aggregator-terms" not in line]
    found = sorted({m.group(0) for m in RELOADLY_TERMS.finditer("\n".join(lines))})
    assert not found, f"{name} uses an aggregator's own terms: {found}"


def test_an_order_names_our_operator_and_reference() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(port.TopupOrder)}
    assert {"reference", "operator", "amount_minor", "currency"} <= set(fields)
    assert all("int" not in str(kind) for name, kind in fields.items() if "operator" in name)


def test_an_outcome_is_delivered_failed_or_unknown() -> None:
    assert [o.value for o in port.Outcome] == ["delivered", "failed", "unknown"]
