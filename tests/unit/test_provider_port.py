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
# Each aggregator's own words (its ids, its idempotency field, its statuses, its auth) and the
# files where they belong: its adapter and wire modules.
TERMS = {
    "reloadly": (
        r"operator_id\b|operatorId|customIdentifier|\bPROCESSING\b|\bSUCCESSFUL\b|REFUNDED|oauth"
        r"|client_secret|auth_url|reloadly_wire|ReloadlyProvider",
        ("core/providers/reloadly.py", "core/providers/reloadly_wire.py"),
    ),
    "dtone": (
        r"auto_confirm|credit_party|product_id|calculation_mode|\bSUBMITTED\b|\bDECLINED\b"
        r"|api_secret|dtone_wire|DtOneProvider",
        ("core/providers/dtone.py", "core/providers/dtone_wire.py"),
    ),
}
# Where any aggregator's words may appear: the registry naming them, the history of the schema.
SHARED = (
    "core/providers/registry.py",
    "core/migrations/",
    "core/settings.py",  # the adapters' settings are read by name there (AIRGATE_PROVIDER_* …)
    "core/setting_routing.py",  # and an account's (AIRGATE_PROVIDERS)
    "core/logging.py",  # masks every secret setting by name
)


def _core_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "core").rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _core_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_speaks_no_aggregators_terms(path: Path) -> None:
    name = path.relative_to(ROOT).as_posix()
    if name.startswith(SHARED):
        return
    lines = [line for line in path.read_text().splitlines() if "# aggregator-terms" not in line]
    text = "\n".join(lines)
    if any(name in home for _terms, home in TERMS.values()):
        return  # an adapter: two aggregators' APIs may share a word (operator_id)
    for aggregator, (terms, _home) in TERMS.items():
        found = sorted({m.group(0) for m in re.finditer(terms, text, re.IGNORECASE)})
        assert not found, f"{name} uses {aggregator}'s own terms: {found}"


def test_an_order_names_our_operator_and_reference() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(port.TopupOrder)}
    assert {"reference", "operator", "amount_minor", "currency"} <= set(fields)
    assert all("int" not in str(kind) for name, kind in fields.items() if "operator" in name)


def test_an_outcome_is_delivered_failed_or_unknown() -> None:
    assert [o.value for o in port.Outcome] == ["delivered", "failed", "unknown"]
