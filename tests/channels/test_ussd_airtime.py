"""The airtime journey on Africa's Talking, hop by hop, over HTTP."""

from __future__ import annotations

from sqlalchemy import select

from core.context import Core
from core.models import Topup
from tests.channels.conftest import AtPhone


async def test_the_cancelled_journey_of_the_issue(phone: AtPhone) -> None:
    menu = await phone.dial()
    assert menu.startswith("CON AirGate\n1. Airtime top-up\n2. Data bundle")
    assert "7. My account" in menu
    assert await phone.send("1") == "CON Enter the customer's phone number:\n0 Back 00 Menu"
    amount = await phone.send("0788123456")
    assert amount == "CON Airtel 0788123456\nAmount (KES 5 to KES 10,000):\n0 Back 00 Menu"
    confirm = await phone.send("500")
    assert confirm == (
        "CON Top up KES 500 to 0788123456 (Airtel)?\nEnter PIN to confirm or 0 to cancel"
    )
    assert await phone.send("0") == "END Cancelled. Nothing was done."


async def test_the_right_pin_ends_with_the_reference(phone: AtPhone, core: Core) -> None:
    await phone.dial()
    for text in ("1", "0788123456", "500"):
        await phone.send(text)
    done = await phone.send("1234")
    async with core.sessions() as session:
        topup = (await session.execute(select(Topup))).scalar_one()
    assert done == (
        f"END Top-up of KES 500 to 0788123456 accepted. Ref {topup.id}. You will receive an SMS."
    )
    assert (topup.msisdn, topup.amount_minor, topup.channel) == ("+254788123456", 50_000, "ussd")
