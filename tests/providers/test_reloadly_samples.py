"""Reloadly's own published samples, replayed verbatim (tests/fixtures/reloadly/README.md).

The official Java SDK's fixtures leave out ``status`` in the POST /topups answer and in report
items, and carry ``customIdentifier: null``; the OpenAPI document always has a status. Both are
Reloadly's, so both are read: what each shape means is in docs/PROVIDERS.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from core.providers import reloadly_wire as wire
from core.providers.port import Outcome, ProviderTransaction
from tests.providers.conftest import MakeProvider, order, serve
from tests.providers.test_reloadly_errors import Handler, fake

SAMPLES = Path(__file__).parent.parent / "fixtures" / "reloadly"
POST_ANSWER = "phone_topup_transaction.json"
REPORT_PAGES = (
    "transaction_history_filtered_page.json",
    "transaction_history_unfiltered_page.json",
)


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def parsed(name: str) -> list[ProviderTransaction]:
    """Every transaction a sample holds, read the way the adapter reads that endpoint."""
    body = wire.parse_json(raw(name))
    if name in REPORT_PAGES:
        return [wire.transaction(item) for item in wire.content(body)]
    if "transaction" in body:  # GET /topups/{id}/status wraps the transaction
        return [wire.transaction(body["transaction"])]
    return [wire.transaction(body)]


def verbatim(name: str) -> Handler:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=raw(name), content_type="application/json")

    return handler


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_every_published_sample_is_read_as_a_completed_top_up(name: str) -> None:
    found = parsed(name)
    assert found
    for tx in found:
        assert tx.outcome is Outcome.DELIVERED
        assert tx.reference != "None"
        assert tx.provider_ref and tx.provider_ref.isdigit()
        assert tx.delivered_minor and tx.delivered_minor > 0


def test_the_post_answer_without_a_status_is_a_delivery() -> None:
    (tx,) = parsed(POST_ANSWER)
    assert tx == ProviderTransaction(
        reference="fe8c5a90-691a-452a-a9a6-19045f7f7a7c",
        outcome=Outcome.DELIVERED,
        provider_ref="10670",
        operator_ref=None,
        delivered_minor=108_931,
        currency="HTG",
        at=datetime(2021, 1, 16, 3, 39, 56, tzinfo=UTC),
        charged_minor=1_320,
        charge_currency="USD",
        balance_before_minor=164_856,
        balance_after_minor=163_536,
    )


def test_a_null_custom_identifier_is_no_reference() -> None:
    (tx,) = parsed("transaction_history_by_id.json")
    assert tx.reference is None
    page = parsed("transaction_history_unfiltered_page.json")
    assert {tx.reference for tx in page} == {None, "050420200216918"}


async def test_the_adapter_reads_the_sdks_post_answer(make_provider: MakeProvider) -> None:
    async with serve(fake(verbatim(POST_ANSWER))) as url:
        adapter = await make_provider(url)
        tx = await adapter.send_topup(order(0, "fe8c5a90-691a-452a-a9a6-19045f7f7a7c"))
    assert (tx.outcome, tx.provider_ref) == (Outcome.DELIVERED, "10670")
    assert tx.delivered_minor == 108_931


async def test_a_post_answer_with_a_null_identifier_is_ours(make_provider: MakeProvider) -> None:
    async with serve(fake(verbatim("transaction_history_by_id.json"))) as url:
        adapter = await make_provider(url)
        tx = await adapter.send_topup(order(0, "ref-1"))
    assert (tx.reference, tx.outcome, tx.provider_ref) == ("ref-1", Outcome.DELIVERED, "10657")


async def test_find_picks_the_reference_out_of_the_sdks_report(make_provider: MakeProvider) -> None:
    page = verbatim("transaction_history_unfiltered_page.json")
    async with serve(fake(verbatim(POST_ANSWER), page)) as url:
        adapter = await make_provider(url)
        tx = await adapter.find(reference="050420200216918", since=datetime(2020, 1, 1, tzinfo=UTC))
        missing = await adapter.find(reference="None", since=datetime(2020, 1, 1, tzinfo=UTC))
    assert tx is not None and (tx.provider_ref, tx.delivered_minor) == ("3540", 151_223)
    assert missing is None


def test_balance_info_is_the_charge_and_the_balances() -> None:
    """The SDK's balanceInfo has no ``cost``: the charge is what the balance went down by."""
    (tx,) = parsed(POST_ANSWER)  # oldBalance 1648.56, newBalance 1635.36, USD
    assert (tx.balance_before_minor, tx.balance_after_minor) == (164_856, 163_536)
    assert (tx.charged_minor, tx.charge_currency) == (1_320, "USD")
    (status,) = parsed("phone_topup_transaction_status.json")  # 1000.00 → 982.60
    assert (status.charged_minor, status.balance_after_minor) == (1_740, 98_260)
    # Report rows with "balanceInfo": null carry no charge, not a zero one.
    for tx in parsed("transaction_history_filtered_page.json"):
        assert tx.charged_minor is tx.balance_before_minor is tx.charge_currency is None


def test_a_given_cost_is_the_charge() -> None:
    info = wire.parse_json(b'{"oldBalance": 100, "newBalance": 90.2, "cost": 9.8}')
    assert wire.balance_info(info)["charged_minor"] == 980
