"""Every retailer and distributor journey on USSD, over HTTP, with the real engine and services."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update
from sqlmodel import col

from airgate.server import build_app
from core.context import Core
from core.models import Party, PartyStatus, SupportCase, Topup
from core.services import parties, stock
from core.services.audit import Actor
from core.services.seed import DISTRIBUTOR_MSISDN
from core.settings import Settings, UssdGateway
from tests.channels.conftest import AtPhone

PIN = "1234"


async def _to_confirm(phone: AtPhone, number: str = "0788123456", amount: str = "500") -> str:
    await phone.dial()
    await phone.send("1")
    await phone.send(number)
    return await phone.send(amount)


async def test_a_wrong_number_reprompts_with_the_reason(phone: AtPhone) -> None:
    await phone.dial()
    await phone.send("1")
    again = await phone.send("07881")
    assert again == (
        "CON That is not a valid phone number.\nEnter the customer's phone number:\n0 Back 00 Menu"
    )
    assert (await phone.send("+254 788 123 456")).startswith("CON Airtel 0788123456")


async def test_an_amount_out_of_range_reprompts_with_the_range(phone: AtPhone) -> None:
    await phone.dial()
    await phone.send("1")
    await phone.send("0788123456")
    assert (await phone.send("2")).startswith("CON Amount must be KES 5 to KES 10,000.\nAirtel")
    assert (await phone.send("lots")).startswith("CON Enter an amount in numbers, like 500.")
    assert (await phone.send("50")).startswith("CON Top up KES 50 to 0788123456 (Airtel)?")


async def test_wrong_pins_count_down_then_lock_and_say_whom_to_call(
    phone: AtPhone, core: Core
) -> None:
    await _to_confirm(phone)
    first = await phone.send("9999")
    assert first.startswith("CON Wrong PIN. 2 attempt(s) left.\nTop up KES 500")
    assert (await phone.send("9998")).startswith("CON Wrong PIN. 1 attempt(s) left.")
    locked = await phone.send("9997")
    assert locked == (
        "END Your PIN is locked after too many wrong tries. "
        f"Call Demo Distributor ({DISTRIBUTOR_MSISDN}) to unlock it."
    )
    assert (await phone.redial().dial()).startswith("END Your PIN is locked")
    async with core.sessions() as session:
        assert (await session.execute(select(Topup))).first() is None


async def test_back_and_main_menu_work_on_every_screen(phone: AtPhone) -> None:
    menu = await phone.dial()
    await phone.send("1")
    await phone.send("0788123456")
    assert await phone.send("0") == "CON Enter the customer's phone number:\n0 Back 00 Menu"
    assert await phone.send("0") == menu
    await phone.send("2")
    assert await phone.send("00") == menu
    await phone.send("1")
    await phone.send("0788123456")
    await phone.send("500")
    assert await phone.send("00") == menu  # even on a PIN screen


async def test_a_choice_not_on_the_list_reprompts(phone: AtPhone) -> None:
    await phone.dial()
    assert (await phone.send("9")).startswith("CON Choose a number from the list.\nAirGate")


async def test_data_bundle_with_pin(phone: AtPhone, core: Core) -> None:
    await phone.dial()
    await phone.send("2")
    bundles = await phone.send("0712345678")
    assert bundles.startswith("CON Safaricom bundles for 0712345678:\n1. 200 SMS 24h KES 10")
    confirm = await phone.send("3")  # the third cheapest: 1GB 7 days
    assert confirm.startswith("CON Buy 1GB 7 days (KES 250) for 0712345678 (Safaricom)?")
    done = await phone.send(PIN)
    assert done.startswith("END Top-up of KES 250 to 0712345678 accepted.")
    async with core.sessions() as session:
        topup = (await session.execute(select(Topup))).scalar_one()
    assert topup.product_code == "safaricom-ke:data-1gb-7d"


async def test_balance_and_statement_after_a_top_up(phone: AtPhone) -> None:
    await _to_confirm(phone)
    await phone.send(PIN)
    await phone.dial()
    await phone.send("3")
    balance = await phone.send(PIN)
    assert balance.startswith("END Your balance:\nAirtel: KES 4,500\n")
    assert "Cash: KES" in balance
    await phone.dial()
    await phone.send("5")
    statement = await phone.send(PIN)
    assert statement.startswith("END Last movements:\n")
    assert statement.split("\n")[1].endswith(" -KES 500 Airtel top-up")  # newest first


async def test_buying_stock_shows_the_price_and_how_it_is_paid(phone: AtPhone, core: Core) -> None:
    await phone.dial()
    await phone.send("4")
    await phone.send("1")  # Airtel (operators by name)
    confirm = await phone.send("1000")
    assert confirm.startswith("CON Buy KES 1,000 Airtel for KES 975 (cash KES 975, credit KES 0)?")
    done = await phone.send(PIN)
    assert done.startswith("END Bought KES 1,000 Airtel stock for KES 975. Ref ")
    position = await stock.balance(core, ref=phone.msisdn)
    assert position.stock["airtel-ke"]["available"] == 6_000_00


async def test_buying_more_than_cash_and_credit_reprompts(phone: AtPhone) -> None:
    await phone.dial()
    await phone.send("4")
    await phone.send("1")
    too_much = await phone.send("900000")
    assert too_much.startswith("CON That costs KES 877,500; you can pay KES ")


async def test_support_opens_one_case_per_top_up(phone: AtPhone, core: Core) -> None:
    await _to_confirm(phone)
    await phone.send(PIN)
    await phone.dial()
    await phone.send("6")
    await phone.send("1")
    opened = await phone.send("1")  # yes, open a case
    # The aggregator has no record of it (none runs here): the distributor has it.
    assert opened.startswith("END Case 1 for T") and "Your distributor has it" in opened
    await phone.dial()
    await phone.send("6")
    await phone.send("1")
    assert (await phone.send("1")).startswith("END Case 1 is already open for T")
    async with core.sessions() as session:
        assert len((await session.execute(select(SupportCase))).all()) == 1


async def test_change_pin_then_the_new_one_works(phone: AtPhone) -> None:
    await phone.dial()
    await phone.send("7")
    await phone.send("1")
    await phone.send("4321")
    mismatch = await phone.send("4322")
    assert mismatch == (
        "CON The PINs did not match.\nEnter your new PIN (4 to 6 digits):\n0 Back 00 Menu"
    )
    await phone.send("4321")
    await phone.send("4321")
    assert await phone.send(PIN) == "END Your PIN was changed."
    await phone.dial()
    await phone.send("3")
    assert (await phone.send("4321")).startswith("END Your balance:")


async def test_language_change_is_used_from_the_next_screen(phone: AtPhone, core: Core) -> None:
    await phone.dial()
    await phone.send("7")
    languages = await phone.send("2")
    assert "1. English\n2. Francais\n3. Kiswahili" in languages
    assert (await phone.send("3")).startswith("END Lugha")
    menu = await phone.dial()
    assert "1. " in menu and "Airtime top-up" not in menu
    async with core.sessions() as session:
        party = (
            await session.execute(select(Party).where(Party.msisdn == phone.msisdn))  # type: ignore[arg-type]
        ).scalar_one()
    assert party.language == "sw"


async def test_an_unregistered_number_is_told_how_to_join(phone: AtPhone) -> None:
    stranger = AtPhone(phone.client, "+254711999999")
    assert (await stranger.dial()).startswith("END This number is not registered with AirGate.")


async def test_a_dropped_journey_resumes_within_two_minutes_but_not_past_the_pin(
    phone: AtPhone,
) -> None:
    await _to_confirm(phone)  # dropped on the PIN screen
    again = phone.redial()
    offer = await again.dial()
    assert offer == "CON Continue where you left off (Airtime top-up)?\n1. Continue\n2. Start over"
    resumed = await again.send("1")
    assert resumed.startswith("CON Top up KES 500 to 0788123456 (Airtel)?")
    assert (await again.send(PIN)).startswith("END Top-up of KES 500")
    assert (await phone.redial().dial()).startswith("CON AirGate")  # finished: nothing to resume


async def test_start_over_forgets_the_dropped_journey(phone: AtPhone) -> None:
    await _to_confirm(phone)
    again = phone.redial()
    await again.dial()
    assert (await again.send("2")).startswith("CON AirGate\n1. Airtime top-up")
    assert (await phone.redial().dial()).startswith("CON AirGate")


async def test_a_journey_from_the_menu_keeps_nothing_of_the_one_before(
    phone: AtPhone, redis_url: str
) -> None:
    """Each journey started from the menu has fresh data: the customer's number typed into an
    abandoned top-up rides along neither in the balance journey's session nor its resume point."""
    await _to_confirm(phone)
    await phone.send("00")
    assert (await phone.send("3")).startswith("CON Enter your PIN")  # balance
    client = aioredis.Redis.from_url(redis_url)
    try:
        (key,) = [k async for k in client.scan_iter(f"airgate:s:ussd:*:at:{phone.session_id}")]
        stored = await client.get(key)
        points = [await client.get(key) async for key in client.scan_iter("airgate:r:*")]
    finally:
        await client.aclose()
    assert stored is not None and b'"s":"balance.pin"' in stored, stored
    assert b'"d":' not in stored, stored
    assert len(points) == 1 and points[0] is not None and b"788123456" not in points[0], points


async def test_an_expired_session_says_so_and_starts_over(phone: AtPhone, redis_url: str) -> None:
    await phone.dial()
    await phone.send("1")
    client = aioredis.Redis.from_url(redis_url)
    async for key in client.scan_iter(f"airgate:s:ussd:*:at:{phone.session_id}"):
        await client.delete(key)
    await client.aclose()
    expired = await phone.send("0788123456")
    assert expired.startswith("CON Your session expired. Starting again.\nAirGate\n1. Airtime")


async def test_concurrent_copies_of_one_hop_apply_once_and_answer_alike(
    phone: AtPhone, core: Core
) -> None:
    await _to_confirm(phone)
    phone.inputs.append(PIN)
    path = "*".join(phone.inputs)
    answers = await asyncio.gather(*(phone._post(path) for _ in range(8)))
    async with core.sessions() as session:
        topups = (await session.execute(select(Topup))).scalars().all()
    assert len(topups) == 1
    assert all(a.startswith("END Top-up of KES 500") and topups[0].id in a for a in answers)


async def test_a_gateway_retry_of_an_answered_hop_changes_nothing(phone: AtPhone) -> None:
    await phone.dial()
    await phone.send("1")
    number = await phone.send("0788123456")
    assert await phone._post("1*0788123456") == number


async def test_distributor_sells_stock_to_its_retailer(client: object, core: Core) -> None:
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)  # type: ignore[arg-type]
    menu = await distributor.dial()
    assert menu.startswith("CON AirGate\n1. My balance\n2. Sell stock\n3. Low-stock retailers")
    await distributor.send("2")
    assert (await distributor.send("0799999999")).startswith("CON That number is not one of")
    await distributor.send("0700000002")
    await distributor.send("1")  # Airtel
    confirm = await distributor.send("2000")
    assert confirm.startswith("CON Sell KES 2,000 Airtel to Demo Shop 002")
    assert "for KES 1,950?" in confirm
    assert (await distributor.send(PIN)).startswith("END Sold KES 2,000 Airtel to Demo Shop 002")
    position = await stock.balance(core, ref="+254700000002")
    assert position.stock["airtel-ke"]["available"] == 7_000_00


async def test_a_screen_refused_while_shown_again_ends_with_the_reason(
    client: object, core: Core
) -> None:
    """A wrong PIN shows the confirmation again; if the retailer left the distributor meanwhile,
    showing it is refused, and that refusal ends the journey in words (not an internal error)."""
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)  # type: ignore[arg-type]
    await distributor.dial()
    await distributor.send("2")
    await distributor.send("0700000002")
    await distributor.send("1")
    assert (await distributor.send("2000")).startswith("CON Sell KES 2,000 Airtel")
    async with core.transaction() as session:
        await session.execute(
            update(Party).where(col(Party.msisdn) == "+254700000002").values(parent_id=None)
        )
    reply = await distributor.send("9999")
    assert reply == "END That is not allowed for your account."
    position = await stock.balance(core, ref="+254700000002")
    assert position.stock["airtel-ke"]["available"] == 5_000_00


async def test_distributor_sees_low_stock_retailers(client: object, core: Core) -> None:
    shop = AtPhone(client, "+254700000003")  # type: ignore[arg-type]
    await _to_confirm(shop, amount="4500")
    await shop.send(PIN)  # 500 of Airtel left: under the 1,000 threshold
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)  # type: ignore[arg-type]
    await distributor.dial()
    low = await distributor.send("3")
    assert low.startswith("CON Low on stock:\n1. Demo Shop 003 Airtel KES 500")
    detail = await distributor.send("1")
    assert detail.startswith("END Demo Shop 003 0700000003\n")


async def test_a_small_gateway_pages_the_menu_and_keeps_its_numbers(
    app_settings: Settings, client: TestClient
) -> None:
    small = app_settings.model_copy(
        update={"ussd_gateways": {"africastalking": UssdGateway(gsm7_limit=70)}}
    )
    async with TestClient(TestServer(build_app(small))) as small_client:
        phone = AtPhone(small_client, "+254700000001")
        first = await phone.dial()
        assert first.endswith("\n98 More") and "1. Airtime top-up" in first
        assert all(len(page) - 4 <= 70 for page in [first])
        second = await phone.send("98")
        assert "\n0 Back" in second and "1. Airtime" not in second
        assert await phone.send("0") == first
        await phone.send("98")
        await phone.send("98")
        account = await phone.send("7")  # its number on the last page, chosen from there
        assert account.startswith("CON My account")


async def test_a_suspended_retailer_is_told_so(phone: AtPhone, core: Core) -> None:
    await parties.set_status(
        core, actor=Actor.system(), ref=phone.msisdn, status=PartyStatus.SUSPENDED
    )
    assert await phone.dial() == (
        "END Your AirGate account is suspended. Please call your distributor."
    )


async def test_a_pin_change_dropped_after_the_first_pin_resumes_before_it(
    phone: AtPhone,
) -> None:
    await phone.dial()
    await phone.send("7")
    await phone.send("1")
    await phone.send("4321")  # dropped on "enter the new PIN again"
    again = phone.redial()
    assert (await again.dial()).startswith("CON Continue where you left off (My account)?")
    assert await again.send("1") == "CON Enter your new PIN (4 to 6 digits):\n0 Back 00 Menu"


async def test_an_empty_low_stock_list_ends_the_session(client: TestClient) -> None:
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    assert await distributor.send("3") == "END None of your retailers is low on stock."


async def test_distributor_sees_its_retailers_and_unlocks_one(
    client: TestClient, core: Core
) -> None:
    shop = AtPhone(client, "+254700000002")
    await _to_confirm(shop)
    for wrong in ("9999", "9998", "9997"):
        await shop.send(wrong)  # locked
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    listed = await distributor.send("6")
    assert listed.startswith("CON Your retailers:\n1. Demo Shop 001 KES 15,000\n")
    assert "2. Demo Shop 002 KES 15,000 LOCKED" in listed
    detail = await distributor.send("2")
    assert detail.startswith("CON Demo Shop 002 0700000002\nStock: KES 15,000\nLast top-up: never")
    assert "2. Unlock PIN" in detail
    confirm = await distributor.send("2")
    assert confirm.startswith("CON Unlock the PIN of Demo Shop 002?\nEnter your PIN")
    assert await distributor.send(PIN) == "END Demo Shop 002: PIN unlocked."
    assert (await shop.redial().dial()).startswith("CON AirGate")


async def test_distributor_sells_from_the_retailer_screen_and_sees_todays_sales(
    client: TestClient, core: Core
) -> None:
    shop = AtPhone(client, "+254700000001")
    await _to_confirm(shop)
    await shop.send(PIN)
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    await distributor.send("6")
    await distributor.send("1")
    assert (await distributor.send("1")).startswith("CON Which operator's stock to sell to Demo")
    await distributor.send("1")  # Airtel
    await distributor.send("1000")
    assert (await distributor.send(PIN)).startswith("END Sold KES 1,000 Airtel to Demo Shop 001")
    await distributor.dial()
    today = await distributor.send("7")
    assert today == "END Today: 0 top-ups delivered, KES 0. 1 still in progress."


async def test_distributor_invites_a_retailer_to_telegram(client: TestClient) -> None:
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    await distributor.send("6")
    await distributor.send("3")
    assert (await distributor.send("2")).startswith("CON Invite Demo Shop 003 to Telegram?")
    assert (await distributor.send("0")) == "END Cancelled. Nothing was done."
    await distributor.dial()
    await distributor.send("6")
    await distributor.send("3")
    await distributor.send("2")
    invited = await distributor.send(PIN)
    assert invited.startswith("END Invite code for Demo Shop 003: ")
    assert "/start " in invited and "within 72 h." in invited
