"""The report (find, paging), operators and auto-detection, through the adapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import ProviderRejected
from core.providers.port import Outcome
from core.providers.reloadly import ReloadlyProvider
from tests.providers.conftest import MakeProvider, Sandbox, order


async def test_find_returns_none_for_a_reference_never_sent(provider: ReloadlyProvider) -> None:
    await provider.send_topup(order(0, "sent"))
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert await provider.find(reference="never-sent", since=since) is None
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await provider.find(reference="sent", since=later) is None


async def test_transactions_pages_through_every_one_in_the_window(
    sandbox: Sandbox, make_provider: MakeProvider
) -> None:
    adapter = await make_provider(sandbox.url, report_page_size=10)
    start = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(45):
        await adapter.send_topup(order(n % 10 if n % 10 not in (1, 2, 3, 4) else 0, f"page-{n}"))
    end = datetime.now(UTC) + timedelta(seconds=2)
    seen = [tx async for tx in adapter.transactions(start=start, end=end)]
    assert sorted(tx.reference for tx in seen) == sorted(f"page-{n}" for n in range(45))
    assert len({tx.provider_ref for tx in seen}) == 45
    assert all(tx.outcome is Outcome.DELIVERED for tx in seen)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert [tx async for tx in adapter.transactions(start=later, end=later)] == []


async def test_the_report_pages_are_1_based_and_capped(sandbox: Sandbox) -> None:
    token = await _token(sandbox)
    async with sandbox.http.get(
        f"{sandbox.url}/topups/reports/transactions",
        params={"page": "1", "size": "1000"},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        body = await resp.json()
    assert (body["totalElements"], body["totalPages"]) == (0, 0)
    assert (body["size"], body["number"]) == (200, 0)  # capped; 0-based like a Spring page


async def test_operators_and_auto_detect(provider: ReloadlyProvider) -> None:
    operators = {op.ref: op for op in await provider.operators(country="KE")}
    assert set(operators) == {"1", "2", "3", "101", "102", "103"}
    safaricom, bundles = operators["1"], operators["101"]
    assert (safaricom.denomination_type, safaricom.min_minor, safaricom.max_minor) == (
        "RANGE",
        500,
        1_000_000,
    )
    assert bundles.bundle and bundles.denomination_type == "FIXED"
    assert bundles.fixed_amounts_minor == (1_000, 2_000, 25_000, 100_000)
    assert bundles.name == "Safaricom Kenya Bundles" and bundles.currency == "KES"
    airtel = await provider.detect_operator(msisdn="+254733123456", country="KE")
    assert (airtel.ref, airtel.name, airtel.country) == ("2", "Airtel Kenya", "KE")
    telkom = await provider.detect_operator(msisdn="+254770123456", country="KE")
    assert telkom.ref == "3"
    with pytest.raises(ProviderRejected) as refused:
        await provider.detect_operator(msisdn="+254201234567", country="KE")  # a landline
    assert refused.value.fields["error_code"] == "COULD_NOT_AUTO_DETECT_OPERATOR"


@pytest.mark.parametrize(
    ("changes", "error_code"),
    [
        ({"operator_ref": "42"}, "OPERATOR_UNAVAILABLE_OR_CURRENTLY_INACTIVE"),
        ({"amount_minor": 400}, "INVALID_AMOUNT_FOR_OPERATOR"),  # below KES 5
        ({"amount_minor": 1_000_001}, "INVALID_AMOUNT_FOR_OPERATOR"),
        ({"operator_ref": "101", "amount_minor": 1_500}, "INVALID_AMOUNT_FOR_OPERATOR"),  # FIXED
        ({"msisdn": "+25471234"}, "INVALID_RECIPIENT_PHONE"),
        ({"country": "UG"}, "COUNTRY_NOT_SUPPORTED"),
    ],
)
async def test_invalid_orders_are_rejected_and_not_recorded(
    sandbox: Sandbox, provider: ReloadlyProvider, changes: dict[str, object], error_code: str
) -> None:
    with pytest.raises(ProviderRejected) as refused:
        await provider.send_topup(order(0, "bad", **changes))
    assert refused.value.fields["error_code"] == error_code
    stats = await sandbox.stats()
    assert (stats["delivered"], stats["failed"], stats["requests"]) == (0, 0, 1)


async def test_a_bundle_at_a_fixed_price_is_delivered(provider: ReloadlyProvider) -> None:
    tx = await provider.send_topup(order(0, "bundle", operator_ref="101", amount_minor=25_000))
    assert tx.outcome is Outcome.DELIVERED and tx.delivered_minor == 25_000


async def _token(sandbox: Sandbox) -> str:
    credentials = {
        "client_id": "sandbox",
        "client_secret": "sandbox",
        "grant_type": "client_credentials",
        "audience": sandbox.url,
    }
    async with sandbox.http.post(f"{sandbox.url}/oauth/token", json=credentials) as resp:
        assert resp.status == 200
        token: str = (await resp.json())["access_token"]
        return token
