"""DT One's own description of its API (tests/fixtures/dtone/, verbatim) through our wire parser.

The document has no JSON examples; what it does publish verbatim is the table of every transaction
status and its class, the error codes, and the schemas. Each status must give the outcome
docs/PROVIDERS.md promises; a status the table does not list is unreadable, never guessed.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.providers import dtone_wire as wire
from core.providers.port import Outcome

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "dtone" / "dvs-api-spec.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
DESCRIPTION: str = SPEC["info"]["description"]


def _table(heading: str) -> list[list[str]]:
    """The rows of the markdown table under ``heading`` in the spec's description."""
    section = DESCRIPTION.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if not line.startswith("|") and rows:
            break
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(cells[0]) <= {"-", " "}:
            rows.append(cells)
    return rows[1:]  # without the header row


STATUSES = [(klass, status) for klass, status, _description in _table("### Transaction Status")]
ERROR_CODES = {code: (text, http) for code, text, http in _table("### API Error Codes")}
EXPECTED = {
    "CREATED": Outcome.UNKNOWN,
    "CONFIRMED": Outcome.UNKNOWN,
    "SUBMITTED": Outcome.UNKNOWN,
    "COMPLETED": Outcome.DELIVERED,
    "REVERSED": Outcome.FAILED,
    "REJECTED": Outcome.FAILED,
    "CANCELLED": Outcome.FAILED,
    "DECLINED": Outcome.FAILED,
}


def spec_transaction(klass: str, status: str, *, with_class: bool = True) -> dict[str, Any]:
    """A transaction with the fields the spec's ``Transaction`` schema names, values ours."""
    return {
        "id": 2237615,
        "external_id": "T-20260502-0001",
        "creation_date": "2026-05-02T10:35:00.123Z",
        "confirmation_date": "2026-05-02T10:35:01Z",
        "status": {
            "id": 70000,
            "message": status,
            **({"class": {"id": 7, "message": klass}} if with_class else {}),
        },
        "operator_reference": "OPR-1" if klass == "COMPLETED" else None,
        "requested_values": {
            "source": {"unit_type": "CURRENCY", "unit": "USD", "amount": Decimal("0.39")},
            "destination": {"unit_type": "CURRENCY", "unit": "KES", "amount": Decimal("50.00")},
        },
        "adjusted_values": None,
        "credit_party_identifier": {"mobile_number": "+254712345670"},
    }


def test_the_table_is_the_one_we_map() -> None:
    assert len(STATUSES) == 30  # DT One's table in v1.14.0, counted by hand
    assert {klass for klass, _status in STATUSES} == set(wire.OUTCOMES) == set(EXPECTED)


@pytest.mark.parametrize(("klass", "status"), STATUSES, ids=[s for _k, s in STATUSES])
def test_every_published_status_has_its_outcome(klass: str, status: str) -> None:
    for with_class in (True, False):  # a status without its class is classed by its first word
        tx = wire.transaction(spec_transaction(klass, status, with_class=with_class))
        assert tx.outcome is EXPECTED[klass]
        assert tx.message == status
    assert tx.reference == "T-20260502-0001" and tx.provider_ref == "2237615"


def test_a_completed_transaction_reads_whole() -> None:
    tx = wire.transaction(spec_transaction("COMPLETED", "COMPLETED"))
    assert (tx.delivered_minor, tx.currency, tx.operator_ref) == (5_000, "KES", "OPR-1")
    assert tx.at.isoformat() == "2026-05-02T10:35:00.123000+00:00"
    adjusted = spec_transaction("COMPLETED", "COMPLETED")
    adjusted["adjusted_values"] = {
        "destination": {"unit_type": "CURRENCY", "unit": "KES", "amount": Decimal("49.5")}
    }
    assert wire.transaction(adjusted).delivered_minor == 4_950  # what DT One adjusted it to


def test_a_declined_one_delivers_nothing() -> None:
    tx = wire.transaction(spec_transaction("DECLINED", "DECLINED-BARRED-CREDIT-PARTY"))
    assert (tx.outcome, tx.delivered_minor) == (Outcome.FAILED, None)


@pytest.mark.parametrize(
    "status",
    [
        {"id": 1, "message": "PENDING", "class": {"id": 1, "message": "PENDING"}},
        {"id": 1, "message": "SOMETHING-NEW"},
        None,
        "COMPLETED",
    ],
)
def test_an_unlisted_status_is_unreadable_not_guessed(status: object) -> None:
    item = spec_transaction("COMPLETED", "COMPLETED")
    item["status"] = status
    with pytest.raises(wire.Malformed):
        wire.transaction(item)


def test_errors_read_as_the_spec_shapes_them() -> None:
    text, http = ERROR_CODES["1007001"]
    assert (text, http) == ("Transaction external ID has already been used", "400")
    body = json.dumps({"errors": [{"code": 1007001, "message": text}]}).encode()
    assert wire.error_fields(body) == ("1007001", text)
    assert wire.error_fields(b"<html>bad gateway</html>") == ("", "<html>bad gateway</html>")
    assert ERROR_CODES["1008004"][0] == "Transaction not found"  # what find() reads as "none"


def test_the_spec_names_the_fields_the_parser_reads() -> None:
    properties = SPEC["components"]["schemas"]["Transaction"]["properties"]
    read = {"id", "external_id", "creation_date", "status", "operator_reference"}
    read |= {"requested_values", "adjusted_values", "credit_party_identifier", "product_id"}
    read |= {"calculation_mode", "destination", "auto_confirm", "sender"}
    assert read <= set(properties)
    status = properties["status"]["properties"]
    assert set(status) == {"id", "message", "class"}
    assert set(status["class"]["properties"]) == {"id", "message"}
    assert SPEC["components"]["securitySchemes"]["BasicAuth"]["scheme"] == "basic"


def test_amounts_and_dates() -> None:
    assert wire.minor(Decimal("123.45")) == 12_345 and wire.major(12_345) == 123.45
    assert wire.major(5_000) == 50
    assert wire.parse_date("2026-05-02T13:35:00+03:00").hour == 10
    day = wire.date(wire.parse_date("2026-05-02"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", day)
