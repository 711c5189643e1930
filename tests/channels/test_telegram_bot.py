"""The Telegram bot: the real PTB Application behind the real webhook route, a fake Bot API."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sqlalchemy import select

from core.context import Core
from core.i18n import t
from core.models import Party, Topup
from core.services import identities, links, statement
from core.services.audit import Actor
from tests.channels.conftest import Telegram

SHOP = "+254700000001"
USER = 5001


async def _linked(telegram: Telegram, core: Core, redis_url: str, user: int = USER) -> None:
    client = aioredis.Redis.from_url(redis_url)
    code = (await links.invite(core, client, actor=Actor.system(), party_ref=SHOP, ttl_s=600)).code
    await client.aclose()
    await telegram.say(user, f"/start {code}")


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_happens(
    telegram: Telegram,
) -> None:
    update = telegram.fake.user_command(USER, "/start")
    assert await telegram.send(update, secret="wrong") == 403
    assert await telegram.send(update, secret="") == 403
    assert telegram.fake.calls_to("sendMessage") == []


async def test_an_unlinked_account_is_offered_the_ways_to_link(telegram: Telegram) -> None:
    await telegram.say(USER, "/start")
    message = telegram.fake.last(USER)
    assert message.text.startswith("This Telegram account is not linked to AirGate.")
    assert message.reply_markup["keyboard"][0][0]["request_contact"] is True


async def test_an_invite_code_links_once(telegram: Telegram, core: Core, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    code = (await links.invite(core, client, actor=Actor.system(), party_ref=SHOP, ttl_s=600)).code
    await client.aclose()
    await telegram.say(USER, f"/start {code}")
    linked = "Linked to Demo Shop 001. Welcome to AirGate.\n\nAirGate"
    assert telegram.screen(USER) == linked  # one message: a chat takes about one a second
    assert [b["text"] for row in telegram.fake.last(USER).buttons for b in row][:2] == [
        "Airtime top-up",
        "Data bundle",
    ]
    await telegram.say(USER + 1, f"/start {code}")  # used: someone else cannot reuse it
    assert telegram.screen(USER + 1).startswith("This link is not valid or has expired.")
    async with core.sessions() as session:
        party = (await session.execute(select(Party).where(Party.msisdn == SHOP))).scalar_one()  # type: ignore[arg-type]
    assert await identities.party_for(core, channel="telegram", external_id=str(USER)) == party.id


async def test_top_up_with_buttons_and_pin_the_pin_message_is_deleted(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    await _linked(telegram, core, redis_url)
    menu = telegram.fake.last(USER)
    await telegram.press(USER, "Airtime top-up")
    assert telegram.fake.last(USER).message_id == menu.message_id  # edited in place
    assert telegram.screen(USER) == "Enter the customer's phone number:"
    await telegram.say(USER, "0788123456")
    assert telegram.screen(USER).startswith("Airtel 0788123456\nAmount")
    await telegram.say(USER, "500")
    assert telegram.screen(USER).startswith("Top up KES 500 to 0788123456 (Airtel)?")
    await telegram.say(USER, "1234")
    async with core.sessions() as session:
        topup = (await session.execute(select(Topup))).scalar_one()
    assert telegram.screen(USER).startswith(
        f"Top-up of KES 500 to 0788123456 accepted. Ref {topup.id}"
    )
    assert topup.channel == "telegram"
    users_texts = [m.text for m in telegram.fake.chat(USER, include_user=True) if not m.from_bot]
    assert "1234" not in users_texts and "500" in users_texts


async def test_a_repeated_update_is_ignored(telegram: Telegram, core: Core, redis_url: str) -> None:
    await _linked(telegram, core, redis_url)
    update = telegram.fake.user_command(USER, "/menu")
    sent = len(telegram.fake.calls_to("sendMessage"))
    assert await telegram.send(update) == 200
    assert await telegram.send(update) == 200
    assert len(telegram.fake.calls_to("sendMessage")) == sent + 1


async def test_balance_command_asks_the_pin_then_shows_the_balance(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    await _linked(telegram, core, redis_url)
    await telegram.say(USER, "/balance")
    assert telegram.screen(USER) == "Enter your PIN to see your balance:"
    await telegram.say(USER, "1234")
    assert telegram.screen(USER).startswith("Your balance:\nAirtel: KES 5,000")
    assert "\nCredit available: KES 5,000 of KES 5,000 limit" in telegram.screen(USER)


async def test_language_change_from_the_command(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    await _linked(telegram, core, redis_url)
    await telegram.say(USER, "/language")
    await telegram.press(USER, "Kiswahili")
    assert telegram.screen(USER) == "Lugha imewekwa kuwa Kiswahili."
    await telegram.press(USER, "\U0001f3e0 00")  # the next journey is in Swahili
    labels = [b["text"] for row in telegram.fake.last(USER).buttons for b in row]
    assert labels[0] == t("sw", "menu.airtime") != t("en", "menu.airtime")


async def test_sharing_ones_contact_and_pin_links(telegram: Telegram, core: Core) -> None:
    await telegram.say(USER, "/start")
    assert await telegram.send(telegram.fake.user_contact(USER, SHOP.lstrip("+"))) == 200
    assert (
        telegram.screen(USER)
        == "Enter your AirGate PIN to link this Telegram account to 0700000001:"
    )
    await telegram.say(USER, "9999")  # the link flow's PIN step re-prompts as every PIN step
    assert telegram.screen(USER) == (
        "Wrong PIN. 2 attempt(s) left.\n"
        "Enter your AirGate PIN to link this Telegram account to 0700000001:"
    )
    await telegram.say(USER, "1234")
    assert telegram.screen(USER) == "Linked to Demo Shop 001. Welcome to AirGate.\n\nAirGate"
    users_texts = [m.text for m in telegram.fake.chat(USER, include_user=True) if not m.from_bot]
    assert "1234" not in users_texts and "9999" not in users_texts


async def test_someone_elses_contact_does_not_link(telegram: Telegram) -> None:
    update = telegram.fake.user_contact(USER, SHOP, contact_user_id=USER + 7)
    assert await telegram.send(update) == 200
    assert telegram.screen(USER) == (
        "Share your own phone number with the button below.\n"
        "This Telegram account is not linked to AirGate. Open the link your distributor sent "
        "you, or share your phone number and enter your PIN."
    )
    assert telegram.fake.last(USER).reply_markup["keyboard"][0][0]["request_contact"] is True


async def test_a_statement_for_a_date_range_comes_as_a_csv_document_after_the_pin(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    await _linked(telegram, core, redis_url)
    await telegram.say(USER, "/statement 2026-13-01")
    assert telegram.screen(USER).startswith("Send /statement for this month, or /statement")
    await telegram.say(USER, "/statement")
    assert telegram.screen(USER).startswith("Enter your PIN to receive your statement from ")
    await telegram.say(USER, "1234")
    document = telegram.fake.documents[-1]
    rows = document.content.decode().splitlines()
    assert rows[0] == "date,time,kind,asset,amount,balance,reference"
    assert {row.split(",")[2] for row in rows[1:]} >= {"sale", "payment"}  # the seeded stock
    assert document.filename.startswith("airgate-statement-") and document.filename.endswith(".csv")
    assert document.caption.endswith(f": {len(rows) - 1} movements.")
    # The very document `airgate statement --csv` prints (tests/e2e/test_cli_reports.py).
    async with core.sessions() as session:
        shop = (await session.execute(select(Party).where(Party.msisdn == SHOP))).scalar_one()
    today = datetime.now(ZoneInfo(core.settings.timezone)).date()
    doc = await statement.for_days(
        core, party_id=shop.id or 0, first=today.replace(day=1), last=today
    )
    assert document.content == statement.as_csv(doc, zone=core.settings.timezone)
    users_texts = [m.text for m in telegram.fake.chat(USER, include_user=True) if not m.from_bot]
    assert "1234" not in users_texts
    # The statement is an engine flow: the adapter keeps no keys of its own but update ids.
    client = aioredis.Redis.from_url(redis_url)
    own = [k async for k in client.scan_iter("airgate:tg:*") if b":update:" not in k]
    await client.aclose()
    assert own == []


async def _top_up(telegram: Telegram, amount: str) -> None:
    await telegram.say(USER, "/topup")
    await telegram.say(USER, "0788123456")
    await telegram.say(USER, amount)
    await telegram.say(USER, "1234")


async def test_a_journey_after_an_expired_session_is_a_new_top_up(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    """A chat's session id never changes and its versions restart after an expiry: the turn's
    idempotency key must still differ, or the second top-up would replay the first."""
    await _linked(telegram, core, redis_url)
    client = aioredis.Redis.from_url(redis_url)
    for amount in ("50", "60"):
        async for key in client.scan_iter(f"airgate:s:telegram:*:{USER}"):
            await client.delete(key)  # 15 minutes of silence
        await _top_up(telegram, amount)  # the same versions as the journey before
    await client.aclose()
    assert telegram.screen(USER).startswith("Top-up of KES 60 to 0788123456 accepted.")
    async with core.sessions() as session:
        amounts = sorted(t.amount_minor for t in (await session.execute(select(Topup))).scalars())
    assert amounts == [5_000, 6_000]


async def test_a_group_chat_gets_nothing(telegram: Telegram) -> None:
    update = telegram.fake.user_command(USER, "/start", chat_id=-100123)
    assert await telegram.send(update) == 200
    assert telegram.fake.calls_to("sendMessage") == []


async def test_a_wrong_current_pin_in_a_pin_change_asks_again(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    await _linked(telegram, core, redis_url)
    await telegram.press(USER, "My account")
    await telegram.press(USER, "Change PIN")
    for text in ("4321", "4321", "9999"):
        await telegram.say(USER, text)
    assert telegram.screen(USER).startswith("Wrong PIN. 2 attempt(s) left.")
    await telegram.say(USER, "1234")
    assert telegram.screen(USER) == "Your PIN was changed."


async def test_an_invite_that_could_not_link_can_still_be_used(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    """The account already acts for another shop: refused, and the code is not used up."""
    await _linked(telegram, core, redis_url, user=USER)  # USER acts for SHOP
    client = aioredis.Redis.from_url(redis_url)
    other = "+254700000002"
    code = (await links.invite(core, client, actor=Actor.system(), party_ref=other, ttl_s=600)).code
    await telegram.say(USER, f"/start {code}")
    assert telegram.screen(USER).startswith(t("en", "link.taken"))
    assert 0 < await client.pttl(links.INVITE_PREFIX + code) <= 600_000
    await client.aclose()
    await telegram.say(USER + 7, f"/start {code}")  # the shop's own account
    assert telegram.screen(USER + 7).startswith("Linked to Demo Shop 002.")


async def test_an_account_linked_away_mid_journey_can_do_nothing_more(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    """The shop linked another Telegram account while this one was on the confirmation: the old
    account's next answer does not act for the shop (its session is fifteen minutes long)."""
    await _linked(telegram, core, redis_url, user=USER)
    await telegram.press(USER, "Airtime top-up")
    await telegram.say(USER, "0788123456")
    await telegram.say(USER, "500")
    assert telegram.screen(USER).startswith("Top up KES 500 to 0788123456 (Airtel)?")
    async with core.sessions() as session:
        shop = (await session.execute(select(Party).where(Party.msisdn == SHOP))).scalar_one()  # type: ignore[arg-type]
    await links.link(core, party_id=shop.id or 0, telegram_user_id=USER + 9, how="code")
    await telegram.say(USER, "1234")
    assert telegram.screen(USER).startswith("This Telegram account is not linked to AirGate.")
    async with core.sessions() as session:
        assert (await session.execute(select(Topup))).scalars().all() == []


async def test_a_button_on_an_old_message_does_not_pick_from_a_new_list(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    """The linking message's menu is still in the chat while the session is on the bundle list:
    its "Data bundle" (option 2) must not choose the second bundle."""
    await _linked(telegram, core, redis_url)
    await telegram.say(USER, "/menu")
    await telegram.press(USER, "Data bundle")  # on the newest menu
    await telegram.say(USER, "0722123456")
    bundles = telegram.screen(USER)
    await telegram.press(USER, "Data bundle")  # only the first menu still has it
    old = telegram.fake.chat(USER)[0]
    assert old.text == f"That list has changed since. Choose again.\n{bundles}"
