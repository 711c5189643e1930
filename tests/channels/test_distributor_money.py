"""A distributor's money on USSD, over HTTP: a retailer's purchase on credit becomes a request the
distributor approves or refuses with its PIN (menu 8), and a deposit repays the retailer's credit
(My retailers → a retailer → Record deposit)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core.context import Core
from core.models import Notification, RequestState, StockRequest
from core.services import stock
from core.services.seed import DISTRIBUTOR_MSISDN
from tests.channels.conftest import AtPhone

PIN = "1234"
SHOP = "+254700000001"  # seeded: KES 5,375 cash, KES 5,000 credit, 2.5 % discount


async def _ask_on_credit(client: TestClient) -> str:
    """Shop 001 buys KES 10,000 of Airtel (KES 9,750): more than its cash."""
    shop = AtPhone(client, SHOP)
    await shop.dial()
    await shop.send("4")
    await shop.send("1")  # Airtel
    confirm = await shop.send("10000")
    assert confirm.startswith(
        "CON Buy KES 10,000 Airtel: cash KES 5,375 + credit KES 4,375 (needs approval)?"
    )
    return await shop.send(PIN)


async def _requests(core: Core) -> list[StockRequest]:
    async with core.sessions() as session:
        return list((await session.execute(select(StockRequest))).scalars())


async def test_a_purchase_on_credit_waits_for_the_distributors_approval(
    client: TestClient, core: Core
) -> None:
    sent = await _ask_on_credit(client)
    assert sent == (
        "END Request 1 sent to Demo Distributor; you will get an SMS when it is decided."
    )
    [request] = await _requests(core)
    assert (request.state, request.face_minor) == (RequestState.PENDING, 10_000_00)
    assert (await stock.balance(core, ref=SHOP)).stock["airtel-ke"]["available"] == 5_000_00

    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    listed = await distributor.send("8")
    assert listed.startswith("CON Stock requests waiting:\n1. Demo Shop 001 Airtel KES 10,000 0m")
    detail = await distributor.send("1")
    assert detail.startswith(
        "CON Request 1 (0m)\nDemo Shop 001: KES 10,000 Airtel\n"
        "KES 9,750 = cash KES 5,375 + credit KES 4,375\n1. Approve\n2. Refuse"
    )
    confirm = await distributor.send("1")
    assert confirm.startswith("CON Approve request 1: KES 10,000 Airtel to Demo Shop 001?")
    assert (await distributor.send("9999")).startswith("CON Wrong PIN. 2 attempt(s) left.")
    done = await distributor.send(PIN)
    assert done == (
        "END Request 1 approved: KES 10,000 Airtel sold to Demo Shop 001 for KES 9,750"
        " (credit KES 4,375)."
    )
    position = await stock.balance(core, ref=SHOP)
    assert position.stock["airtel-ke"]["available"] == 15_000_00
    assert position.cash["KES"]["cash"] == 0
    assert position.cash["KES"]["credit_available"] == 625_00
    [request] = await _requests(core)
    assert request.state == RequestState.APPROVED
    async with core.sessions() as session:
        keys = set((await session.execute(select(Notification.key))).scalars())
    assert {"req:1:new", "req:1:decided"} <= keys

    await distributor.dial()  # decided: the list is empty, a second approval impossible
    assert await distributor.send("8") == "END No stock requests are waiting."


async def test_a_refused_request_moves_nothing(client: TestClient, core: Core) -> None:
    await _ask_on_credit(client)
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    await distributor.send("8")
    await distributor.send("1")
    assert (await distributor.send("2")).startswith("CON Refuse request 1 of Demo Shop 001?")
    assert (
        await distributor.send(PIN) == "END Request 1 of Demo Shop 001 refused. They will be told."
    )
    [request] = await _requests(core)
    assert request.state == RequestState.REFUSED
    assert (await stock.balance(core, ref=SHOP)).stock["airtel-ke"]["available"] == 5_000_00


async def test_a_deposit_repays_credit_first_then_adds_cash(client: TestClient, core: Core) -> None:
    shop = AtPhone(client, SHOP)
    await _ask_on_credit(client)
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    await distributor.send("8")
    await distributor.send("1")
    await distributor.send("1")
    await distributor.send(PIN)  # KES 4,375 of credit in use

    await distributor.dial()
    await distributor.send("6")
    detail = await distributor.send("1")
    assert detail.endswith(
        "1. Sell stock\n2. Invite to Telegram\n3. Record deposit\n0 Back 00 Menu"
    )
    assert (
        await distributor.send("3")
        == "CON Cash received from Demo Shop 001. Amount:\n0 Back 00 Menu"
    )
    reference = await distributor.send("5000")
    assert (
        reference == "CON Payment reference (e.g. M-Pesa code):\n1. Make one for me\n0 Back 00 Menu"
    )
    assert (await distributor.send("no spaces please")).startswith(
        "CON A reference is 1 to 24 letters or digits.\nPayment reference"
    )
    confirm = await distributor.send("QX12AB34CD")
    assert confirm.startswith("CON Record deposit of KES 5,000 from Demo Shop 001, ref QX12AB34CD?")
    done = await distributor.send(PIN)
    assert done == (
        "END Deposit of KES 5,000 from Demo Shop 001 recorded: credit repaid KES 4,375,"
        " cash added KES 625. Ref QX12AB34CD."
    )
    cash = (await stock.balance(core, ref=SHOP)).cash["KES"]
    assert (cash["cash"], cash["credit_available"]) == (625_00, 5_000_00)

    # The same reference again is refused, not counted twice; "1" makes a fresh one.
    await distributor.dial()
    await distributor.send("6")
    await distributor.send("1")
    await distributor.send("3")
    await distributor.send("100")
    await distributor.send("QX12AB34CD")
    again = await distributor.send(PIN)
    assert again == "END Reference QX12AB34CD was already recorded. Nothing was done."
    await distributor.dial()
    await distributor.send("6")
    await distributor.send("1")
    await distributor.send("3")
    await distributor.send("100")
    assert (await distributor.send("1")).startswith("CON Record deposit of KES 100 from Demo Shop")
    assert ". Ref DEP-" in (await distributor.send(PIN))
    assert (await stock.balance(core, ref=SHOP)).cash["KES"]["cash"] == 725_00
    assert (await shop.dial()).startswith("CON AirGate")
