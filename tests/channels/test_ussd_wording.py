"""The words a retailer or distributor reads on USSD, as a newcomer meets them (issue 12)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from airgate.server import build_app
from core.context import Core
from core.models import Topup, Transfer
from core.services.seed import DISTRIBUTOR_MSISDN, seed_demo
from core.settings import Settings
from tests.channels.conftest import AtPhone

PIN = "1234"
# 23:30 UTC on 31 May is 02:30 on 1 June in Nairobi (UTC+3): a person there reads 01/06.
LATE_UTC = datetime(2026, 5, 31, 23, 30, tzinfo=UTC)
SHORT_SALE_REF = re.compile(r"Ref S[0-9A-Z]{12}\.")


async def _top_up(phone: AtPhone, number: str = "0788123456", amount: str = "500") -> str:
    await phone.dial()
    await phone.send("1")
    await phone.send(number)
    await phone.send(amount)
    return await phone.send(PIN)


async def test_a_foreign_number_is_said_to_be_foreign(phone: AtPhone) -> None:
    await phone.dial()
    await phone.send("1")
    reply = await phone.send("+255712345678")  # Tanzanian: not "no operator for 0712345678"
    assert reply == (
        "CON +255712345678 is a foreign number. Enter a local one.\n"
        "Enter the customer's phone number:\n0 Back 00 Menu"
    )


async def test_cents_are_refused_as_not_whole_shillings(phone: AtPhone) -> None:
    await phone.dial()
    await phone.send("1")
    await phone.send("0788123456")
    reply = await phone.send("50.5")
    assert reply.startswith("CON Amount must be whole KES, without cents (like 50).\nAirtel")


async def test_balance_says_how_much_credit_is_available_of_the_limit(phone: AtPhone) -> None:
    await phone.dial()
    await phone.send("3")
    balance = await phone.send(PIN)
    assert "\nCredit available: KES 5,000 of KES 5,000 limit" in balance


async def test_statement_lines_read_like_a_person_in_local_time(
    client: TestClient, core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purchase posted at 23:30 UTC is on the next day in Nairobi; money reads "KES 487.50"."""
    for module in ("core.ledger.generic", "core.ledger.pg_fast"):
        monkeypatch.setattr(f"{module}.utcnow", lambda: LATE_UTC)
    shop = AtPhone(client, "+254700000001")
    await shop.dial()
    await shop.send("4")
    await shop.send("1")  # Airtel
    await shop.send("500")
    assert (await shop.send(PIN)).startswith("END Bought KES 500 Airtel stock for KES 487.50.")
    async with core.sessions() as session:
        assert LATE_UTC in set((await session.execute(select(Transfer.created_at))).scalars())
    await shop.dial()
    await shop.send("5")
    lines = (await shop.send(PIN)).split("\n")[1:]
    assert "01/06 -KES 487.50 paid" in lines
    assert "01/06 +KES 500 Airtel stock" in lines
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    await distributor.send("4")
    assert "01/06 +KES 487.50 received" in (await distributor.send(PIN)).split("\n")


async def test_support_list_and_retailer_detail_show_local_times(
    client: TestClient, core: Core
) -> None:
    shop = AtPhone(client, "+254700000001")
    await _top_up(shop)
    async with core.transaction() as session:
        await session.execute(update(Topup).values(created_at=LATE_UTC))
    await shop.dial()
    listed = await shop.send("6")
    assert listed.startswith("CON Which top-up has a problem?\n1. 0788123456 KES 500 01/06")
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    await distributor.send("6")
    assert "Last top-up: 01/06 02:30" in await distributor.send("1")


async def test_support_asks_before_it_opens_a_case(phone: AtPhone, core: Core) -> None:
    await _top_up(phone)
    async with core.sessions() as session:
        topup = (await session.execute(select(Topup))).scalar_one()
    await phone.dial()
    await phone.send("6")
    confirm = await phone.send("1")
    assert confirm.startswith(
        f"CON Report top-up {topup.id} (KES 500 to 0788123456) to support?\n1. Yes, open a case"
    )
    assert await phone.send("0") == "END Cancelled. Nothing was done."
    await phone.dial()
    await phone.send("6")
    await phone.send("1")
    # The aggregator has no record of it (none runs here): the case goes to the distributor.
    assert (await phone.send("1")).startswith(f"END Case 1 for {topup.id}: the aggregator")


async def test_selling_asks_which_operators_stock_and_gives_a_short_reference(
    client: TestClient, core: Core
) -> None:
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    await distributor.send("2")
    ask = await distributor.send("0700000002")
    assert ask.startswith("CON Which operator's stock to sell to Demo Shop 002?\n1. Airtel")
    await distributor.send("1")
    await distributor.send("2000")
    sold = await distributor.send(PIN)
    assert sold.startswith("END Sold KES 2,000 Airtel to Demo Shop 002 for KES 1,950. Ref S")
    assert SHORT_SALE_REF.search(sold), sold
    reference = sold.rsplit("Ref ", 1)[1].rstrip(".")
    async with core.sessions() as session:
        rows = await session.execute(select(Transfer).where(Transfer.reference == reference))
        assert {t.kind for t in rows.scalars()} == {"sale", "payment"}


async def test_free_input_screens_hint_at_back_and_main_menu(phone: AtPhone) -> None:
    await phone.dial()
    assert await phone.send("1") == "CON Enter the customer's phone number:\n0 Back 00 Menu"
    amount = await phone.send("0788123456")
    assert amount.endswith("\n0 Back 00 Menu")
    confirm = await phone.send("500")  # 0 cancels here, and the screen says so
    assert confirm.endswith("Enter PIN to confirm or 0 to cancel")


async def test_the_demo_has_a_retailer_low_on_stock_for_menu_3(
    app_settings: Settings, core: Core
) -> None:
    await seed_demo(core, retailers=4)  # the demo seeds 10; shop 004 is the low one
    async with TestClient(TestServer(build_app(app_settings))) as client:
        distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
        await distributor.dial()
        low = await distributor.send("3")
    assert low.startswith("CON Low on stock:\n1. Demo Shop 004 Telkom KES 800")
