"""Catalog: operator detection from carrier data and the override table; airtime limits."""

from __future__ import annotations

import pytest

from core.context import Core
from core.errors import InputError, InvalidAmount, NotFound
from core.models import ProductKind
from core.services import catalog
from tests.helpers import ADMIN


@pytest.mark.parametrize(
    ("msisdn", "operator"),
    [
        ("+254722000000", "safaricom-ke"),
        ("+254110000000", "safaricom-ke"),
        ("+254788123456", "airtel-ke"),
        ("+254733000000", "airtel-ke"),
        ("+254770000000", "telkom-ke"),
        ("+254722000999", "airtel-ke"),  # ported: the demo catalog's override wins
    ],
)
async def test_detect_operator(core: Core, msisdn: str, operator: str) -> None:
    await catalog.load_catalog(core, text=catalog.demo_catalog_text(), actor=ADMIN)
    async with core.sessions() as session:
        assert (await catalog.detect_operator(session, msisdn)).code == operator


async def test_unknown_operator_and_products(core: Core) -> None:
    counts = await catalog.load_catalog(core, text=catalog.demo_catalog_text(), actor=ADMIN)
    assert counts.operators == 3
    async with core.sessions() as session:
        with pytest.raises(NotFound):  # a Ugandan MTN number: no such operator in this catalog
            await catalog.detect_operator(session, "+256772123456")
        bundles = await catalog.products_of(session, "safaricom-ke", kind=ProductKind.DATA)
        (airtime,) = await catalog.products_of(session, "safaricom-ke", kind=ProductKind.AIRTIME)
    assert [b.price_minor for b in bundles] == sorted(b.price_minor or 0 for b in bundles)
    catalog.check_airtime_amount(airtime, 50_000, "KES")
    with pytest.raises(InvalidAmount, match="KES 5 to KES 10,000 in steps of KES 1"):
        catalog.check_airtime_amount(airtime, 450, "KES")
    with pytest.raises(InvalidAmount):
        catalog.check_airtime_amount(airtime, 50_050, "KES")


async def test_reloading_a_catalog_updates_in_place(core: Core) -> None:
    text = catalog.demo_catalog_text()
    await catalog.load_catalog(core, text=text, actor=ADMIN)
    await catalog.load_catalog(
        core, text=text.replace("max_minor = 500_000", "max_minor = 400_000"), actor=ADMIN
    )
    async with core.sessions() as session:
        (airtime,) = await catalog.products_of(session, "telkom-ke", kind=ProductKind.AIRTIME)
    assert airtime.max_minor == 400_000
    with pytest.raises(InputError):
        await catalog.load_catalog(
            core, text="country = 'KE'\n[[operators]]\nname='x'", actor=ADMIN
        )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ('kind = "data"', 'kind = "voice"'),
        ("min_minor = 500,", ""),
        ('operator = "airtel-ke"', 'operator = "nope-ke"'),
        ("country", "kountry"),
    ],
)
async def test_a_bad_catalog_is_refused_with_a_reason(core: Core, change: str, words: str) -> None:
    text = catalog.demo_catalog_text().replace(change, words, 1)
    with pytest.raises(InputError, match="catalog"):
        await catalog.load_catalog(core, text=text, actor=ADMIN)
    async with core.sessions() as session:
        assert await catalog.list_operators(session) == []  # nothing half-loaded


async def test_an_operator_carries_an_id_per_aggregator(core: Core) -> None:
    text = catalog.demo_catalog_text().replace(
        'providers.reloadly = { airtime = "3", bundle = "103" }',
        'providers.reloadly = { airtime = "3", bundle = "103" }\n'
        'providers.ding = { airtime = 1377 }',
    )
    await catalog.load_catalog(core, text=text, actor=ADMIN)
    snapshot = await core.catalog.get()
    assert snapshot.operator_ref("safaricom-ke", provider="reloadly", bundle=True) == "101"
    assert snapshot.operator_ref("telkom-ke", provider="reloadly", bundle=False) == "3"
    # An aggregator listing bundles under the operator itself names one id for both.
    assert snapshot.operator_ref("telkom-ke", provider="ding", bundle=True) == "1377"
    with pytest.raises(LookupError, match="airtel-ke has no ding id for airtime"):
        snapshot.operator_ref("airtel-ke", provider="ding", bundle=False)
    # The demo names both aggregators the sandbox speaks: DT One by product, bundles by operator.
    assert snapshot.operator_ref("airtel-ke", provider="dtone", bundle=False) == "30002"
    assert snapshot.operator_ref("airtel-ke", provider="dtone", bundle=True) == "operator:1402"


async def test_a_catalog_with_the_old_operator_id_keys_says_what_they_became(core: Core) -> None:
    text = catalog.demo_catalog_text().replace(
        'providers.reloadly = { airtime = "1", bundle = "101" }', "provider_operator_id = 1"
    )
    with pytest.raises(InputError, match=r"is now providers.<aggregator>.airtime"):
        await catalog.load_catalog(core, text=text, actor=ADMIN)
