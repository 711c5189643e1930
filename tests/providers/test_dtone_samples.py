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


# The sandbox's DT One answers, validated against DT One's own schemas.


def _json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 answer schema as JSON Schema 2020-12: ``nullable`` becomes "or null",
    ``writeOnly`` fields are not required, and an
    ``allOf`` member that is only ``additionalProperties: false`` (OpenAPI's way of closing a
    composed object) becomes ``unevaluatedProperties: false`` on the composition."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    write_only = {
        name
        for name, prop in (node.get("properties") or {}).items()
        if isinstance(prop, dict) and prop.get("writeOnly")
    }  # a request's fields: not required in an answer (OpenAPI 3.0's readOnly/writeOnly rule)
    node = {k: _json_schema(v) for k, v in node.items() if k != "discriminator"}
    if write_only and isinstance(node.get("required"), list):
        node["required"] = [name for name in node["required"] if name not in write_only]
    members = node.get("allOf")
    if isinstance(members, list) and {"additionalProperties": False} in members:
        node["allOf"] = [m for m in members if m != {"additionalProperties": False}]
        node["unevaluatedProperties"] = False
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator

    root = {**schema, "components": {"schemas": _json_schema(SPEC["components"]["schemas"])}}
    return Draft202012Validator(root)


def _response_schema(path: str, method: str, status: str) -> dict[str, Any]:
    answer = SPEC["paths"][path][method]["responses"][status]
    return _json_schema(answer["content"]["application/json"]["schema"])  # type: ignore[no-any-return]


def _errors_of(schema: dict[str, Any], body: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(schema).iter_errors(body)
    ]


async def test_the_sandbox_answers_in_dt_ones_schemas(sandbox: Any) -> None:
    from tests.providers.test_dtone import AIRTIME, BUNDLES, dtone, sale

    adapter = dtone(sandbox.url)
    http, base = sandbox.http, f"{sandbox.url}/v1"
    try:
        await adapter.send_topup(sale(0, "dt-schema-ok"))
        await adapter.send_topup(sale(1, "dt-schema-no"))
        await adapter.send_topup(sale(0, "dt-schema-b", operator_ref=BUNDLES, amount_minor=25_000))
    finally:
        await adapter.close()
    auth = {"Authorization": "Basic c2FuZGJveDpzYW5kYm94"}  # sandbox:sandbox
    number = "mobile-number/+254712345670"
    checks = [
        ("/transactions", "get", "200", "/transactions", {}),
        ("/transactions/{transaction_id}", "get", "200", "/transactions/2237001", {}),
        ("/products", "get", "200", "/products", {}),
        ("/products", "get", "200", "/products", {"operator_id": "1401"}),
        ("/balances", "get", "200", "/balances", {}),
        ("/lookup/mobile-number/{mobile_number}", "get", "200", f"/lookup/{number}", {}),
    ]
    for path, method, status, url, params in checks:
        async with http.get(base + url, params=params, headers=auth) as resp:
            assert resp.status == int(status), url
            body = json.loads(await resp.read(), parse_float=Decimal)
        assert body, url
        found = _errors_of(_response_schema(path, method, status), body)
        assert found == [], (url, found)
    created = {"external_id": "dt-schema-new", "product_id": int(AIRTIME), "auto_confirm": True}
    created |= {"calculation_mode": "DESTINATION_AMOUNT"}
    created |= {"destination": {"unit_type": "CURRENCY", "unit": "KES", "amount": 50}}
    created |= {"credit_party_identifier": {"mobile_number": "+254712345670"}}
    errors = _response_schema("/async/transactions", "post", "default")
    for body_sent, expected in ((created, 201), (created, 400), ({"product_id": 1}, 400)):
        async with http.post(f"{base}/async/transactions", json=body_sent, headers=auth) as resp:
            assert resp.status == expected
            body = await resp.json()
        answer = _response_schema("/async/transactions", "post", "201")
        assert _errors_of(answer if expected == 201 else errors, body) == []
    broken = {"id": 0, "external_id": "", "status": {"id": "one", "message": "COMPLETED"}}
    transaction = _response_schema("/transactions/{transaction_id}", "get", "200")
    assert len(_errors_of(transaction, broken)) == 4  # the check is live: it refuses a bad shape
    async with http.get(f"{base}/balances") as resp:  # no credentials
        assert resp.status == 401 and _errors_of(errors, await resp.json()) == []


def test_the_wholesale_price_is_the_charge() -> None:
    prices = SPEC["components"]["schemas"]["Transaction"]["properties"]["prices"]
    assert {"unit", "amount"} <= set(prices["properties"]["wholesale"]["properties"])
    item = spec_transaction("COMPLETED", "COMPLETED")
    assert wire.transaction(item).charged_minor is None  # no prices: no charge, not zero
    item["prices"] = {
        "wholesale": {"unit_type": "CURRENCY", "unit": "USD", "amount": Decimal("0.39")},
        "retail": None,
    }
    tx = wire.transaction(item)
    assert (tx.charged_minor, tx.charge_currency, tx.balance_before_minor) == (39, "USD", None)
    item["prices"]["wholesale"]["fee"] = Decimal("0.02")  # the fee is taken too
    assert wire.transaction(item).charged_minor == 41
