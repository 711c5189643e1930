"""The fake Bot API against the real python-telegram-bot (and core's aiohttp sender)."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
)
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from core.errors import ProviderRejected, ProviderUnavailable
from core.providers.telegram import TelegramSender
from tests.e2e.conftest import free_port
from tests.fakes.telegram_api import BOT_USERNAME, SECRET_HEADER, FakeTelegram, max_rate

CHAT = 4242
USER = 777
CSV = b"msisdn,amount_minor\n+254712345670,5000\n+254712345671,2000\n"
CONFIRM = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Confirm", callback_data="ok:1"),
            InlineKeyboardButton("Cancel", callback_data="no:1"),
        ]
    ]
)


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    async with fake_telegram.bot() as bot:  # initialize() calls getMe
        yield bot


@pytest.fixture
def timedelta_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns (PTBDeprecationWarning, an error here) whenever RetryAfter is built or its
    int ``retry_after`` read, unless PTB_TIMEDELTA opts in to timedeltas."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


async def test_get_me(fake_telegram: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.username, me.is_bot, me.id) == (BOT_USERNAME, True, 123456)
    assert bot.username == BOT_USERNAME
    assert [c.method for c in fake_telegram.calls] == ["getMe", "getMe"]


async def test_send_and_edit_with_an_inline_keyboard(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake = fake_telegram
    sent = await bot.send_message(
        CHAT, "Top up <b>KES 50</b> &amp; more?", parse_mode="HTML", reply_markup=CONFIRM
    )
    assert (sent.message_id, sent.text, sent.reply_markup) == (1, "Top up KES 50 & more?", CONFIRM)
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 7, 6)]
    stored = fake.last(CHAT)
    assert stored.button("Cancel")["callback_data"] == "no:1"
    # PTB posts a form: the chat id as text, the keyboard as a JSON string (decoded here).
    [call] = fake.calls_to("sendMessage")
    assert call.params["chat_id"] == CHAT and call.params["reply_markup"] == CONFIRM.to_dict()

    edited = await bot.edit_message_text("Done", CHAT, sent.message_id, reply_markup=CONFIRM)
    assert isinstance(edited, Message)  # True only for inline messages
    assert edited.text == "Done" and edited.edit_date is not None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Done", CHAT, sent.message_id, reply_markup=CONFIRM)
    await bot.edit_message_text("Done", CHAT, sent.message_id)  # no markup: the keyboard goes
    assert fake.last(CHAT).buttons == []
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(CHAT, sent.message_id)
    again = await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=CONFIRM)
    assert (
        isinstance(again, Message)
        and again.reply_markup == CONFIRM
        and fake.last(CHAT).text == "Done"
    )
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", CHAT, 99)


async def test_delete(fake_telegram: FakeTelegram, bot: Bot) -> None:
    first = await bot.send_message(CHAT, "one")
    await bot.send_message(CHAT + 1, "elsewhere")
    fake_telegram.limits = False
    second = await bot.send_message(CHAT, "two")
    assert (first.message_id, second.message_id) == (1, 2)  # ids count per chat
    assert await bot.delete_message(CHAT, first.message_id) is True
    assert [m.text for m in fake_telegram.chat(CHAT)] == ["two"]
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(CHAT, first.message_id)
    third = await bot.send_message(CHAT, "three")
    assert third.message_id == 3


async def test_a_document_is_recorded_and_downloadable(
    fake_telegram: FakeTelegram, bot: Bot
) -> None:
    message = await bot.send_document(CHAT, CSV, filename="march.csv", caption="March")
    [doc] = fake_telegram.documents
    assert (doc.filename, doc.content, doc.caption, doc.mime_type) == (
        "march.csv", CSV, "March", "text/csv",
    )  # fmt: skip
    assert message.document is not None and message.document.file_name == "march.csv"
    assert message.caption == "March" and fake_telegram.last(CHAT).document == doc
    [call] = fake_telegram.calls_to("sendDocument")
    assert call.files["document"].filename == "march.csv"  # a multipart file part
    file = await bot.get_file(message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == CSV
    # bytes without a filename go up as "application.octet-stream"
    await bot.send_document(CHAT + 1, CSV)
    assert fake_telegram.documents[1].filename == "application.octet-stream"
    # ... and a user's upload comes in as an update the bot can download from
    fake_telegram.push(fake_telegram.user_document(USER, "bulk.csv", CSV, caption="bulk"))
    [update] = await bot.get_updates()
    assert update.message is not None and update.message.document is not None
    assert update.message.caption == "bulk"
    upload = await update.message.document.get_file()
    assert bytes(await upload.download_as_bytearray()) == CSV


@pytest.mark.usefixtures("timedelta_mode")
async def test_flood_limits_answer_429(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake = fake_telegram
    await bot.send_message(CHAT, "first")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "second, within the second")
    assert caught.value.retry_after == dtm.timedelta(seconds=1)
    assert fake.calls_to("sendMessage")[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    fake.global_per_s = 3
    await bot.send_message(CHAT + 1, "x")
    await bot.send_document(CHAT + 2, CSV, filename="a.csv")  # documents count too
    with pytest.raises(RetryAfter):
        await bot.send_message(CHAT + 3, "the fourth this second")
    assert fake.rate_limited == 2 and fake.chat(CHAT + 3) == []
    assert (fake.max_chat_rate(), fake.max_global_rate()) == (1, 3)

    fake.window = 0.2  # a short window to see it slide without waiting a second
    await fake.wait_until(lambda: time.monotonic() - fake.accepted_all[-1] > fake.window)
    await bot.send_message(CHAT, "later")
    assert [m.text for m in fake.chat(CHAT)] == ["first", "later"]

    fake.limits = False
    for _ in range(5):
        await bot.send_message(CHAT, "unlimited")
    assert fake.rate_limited == 2 and fake.max_chat_rate() == 6  # "later" and five more


def test_max_rate() -> None:
    assert max_rate([]) == 0
    assert max_rate([0.0, 1.0, 2.0]) == 1  # exactly a second apart: 1 per second
    assert max_rate([0.0, 0.5, 0.99, 1.2]) == 3


async def test_a_blocked_chat_is_forbidden(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake_telegram.block(CHAT)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(CHAT, "hello?")
    await bot.send_message(CHAT + 1, "others still hear")
    assert fake_telegram.calls_to("sendMessage")[0].status == 403
    assert fake_telegram.chat(CHAT) == [] and fake_telegram.accepted_all != []
    fake_telegram.unblock(CHAT)
    await bot.send_message(CHAT, "back")


async def test_errors_as_telegram_words_them(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake_telegram.limits = False
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("fooBar")
    assert fake_telegram.calls[-1].response == {
        "ok": False, "error_code": 404, "description": "Not Found: method not found",
    }  # fmt: skip
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(CHAT, "  ")
    with pytest.raises(BadRequest, match="(?i)can't parse entities: Unsupported start tag"):
        await bot.send_message(CHAT, "Shop <Mama Njeri>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(CHAT, "1 < 2", parse_mode="HTML")
    long_data = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "x", reply_markup=long_data)
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query("12345")
    assert fake_telegram.chat(CHAT) == []


async def test_a_wrong_token_is_unauthorized(fake_telegram: FakeTelegram) -> None:
    wrong = Bot("999:wrong", base_url=fake_telegram.base_url)
    with pytest.raises(InvalidToken):
        await wrong.initialize()
    await wrong.shutdown()
    assert fake_telegram.calls[-1].status == 401


async def test_an_application_polls_and_answers(fake_telegram: FakeTelegram) -> None:
    fake = fake_telegram

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and context.args
        await update.message.reply_text(f"Welcome, code {context.args[0]}", reply_markup=CONFIRM)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Linked")
        await query.edit_message_text(f"Linked ({query.data})")
        share = KeyboardButton("Share my number", request_contact=True)
        await context.bot.send_message(
            query.from_user.id, "Share?", reply_markup=ReplyKeyboardMarkup([[share]])
        )

    async def contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.contact is not None
        shared = update.message.contact
        own = shared.user_id == update.effective_user.id if update.effective_user else False
        await update.message.reply_text(f"{shared.phone_number} own={own}")

    app = fake.builder().build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    app.add_handler(MessageHandler(filters.CONTACT, contact))
    fake.limits = False
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=1))
    try:
        fake.push(fake.user_command(USER, "/start ABC123"))
        reply = await fake.wait_until(lambda: fake.chat(USER) and fake.last(USER))
        assert reply.text == "Welcome, code ABC123" and reply.message_id == 2  # after the user's
        fake.push(fake.press(USER, "Confirm"))
        await fake.wait_until(lambda: fake.last(USER).text == "Share?")
        [linked, share] = fake.chat(USER)
        assert (linked.text, linked.buttons) == ("Linked (ok:1)", [])
        assert share.keyboard == [[{"text": "Share my number", "request_contact": True}]]
        assert list(fake.answers.values())[0]["text"] == "Linked"
        fake.push(fake.user_contact(USER, "254712345670"))
        fake.push(fake.user_contact(USER, "254712345671", contact_user_id=USER + 1))
        await fake.wait_until(lambda: len(fake.chat(USER)) == 4)
        assert [m.text for m in fake.chat(USER)[2:]] == [
            "254712345670 own=True", "254712345671 own=False",
        ]  # fmt: skip
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert fake.updates == []  # the updater's last getUpdates confirmed them all
    assert {"getMe", "deleteWebhook", "getUpdates", "answerCallbackQuery"} <= {
        c.method for c in fake.calls
    }
    assert [m.message_id for m in fake.chat(USER, include_user=True)] == [1, 2, 3, 4, 5, 6, 7]


LONG_POLL_S = 120  # a long poll that ends sooner was ended by something else


async def test_long_polling(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake = fake_telegram
    # A long poll far longer than the test waits for it: only the push can end it in time.
    poll = asyncio.create_task(bot.get_updates(timeout=dtm.timedelta(seconds=LONG_POLL_S)))
    await fake.wait_until(lambda: fake.calls_to("getUpdates"), within=30)  # it is waiting
    fake.push(fake.user_message(USER, "hi"))
    [update] = await asyncio.wait_for(poll, LONG_POLL_S / 4)
    assert update.message is not None and update.message.text == "hi"
    assert await bot.get_updates(offset=update.update_id + 1) == ()
    assert fake.updates == []

    # A second instance polling the same token ends the first one's long poll.
    polls = len(fake.calls_to("getUpdates"))
    waiting = asyncio.create_task(bot.get_updates(timeout=dtm.timedelta(seconds=LONG_POLL_S)))
    await fake.wait_until(lambda: len(fake.calls_to("getUpdates")) > polls, within=30)
    async with fake.bot() as other:
        assert await other.get_updates() == ()
    with pytest.raises(Conflict, match="(?i)terminated by other getUpdates request"):
        await waiting


async def test_webhook(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake = fake_telegram
    got: list[tuple[str | None, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append((request.headers.get(SECRET_HEADER), await request.json()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        url = f"http://127.0.0.1:{port}/hook"
        assert await bot.set_webhook(url, secret_token="s3cret") is True
        assert (await bot.get_webhook_info()).url == url
        with pytest.raises(Conflict, match="(?i)webhook is active"):
            await bot.get_updates()
        update = fake.user_message(USER, "via webhook")
        assert await fake.deliver(update) == 200
        assert got == [("s3cret", update)]
        await bot.delete_webhook()
        fake.push(fake.user_message(USER, "polled"))
        [polled] = await bot.get_updates()
        assert polled.message is not None and polled.message.text == "polled"
    finally:
        await runner.cleanup()


async def test_commands(fake_telegram: FakeTelegram, bot: Bot) -> None:
    commands = [BotCommand("start", "Link your shop"), BotCommand("balance", "Your float")]
    assert await bot.set_my_commands(commands) is True
    assert await bot.get_my_commands() == tuple(commands)
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "x")])
    assert await bot.close() is True and await bot.log_out() is True


async def test_core_sender_posts_json(fake_telegram: FakeTelegram) -> None:
    sender = TelegramSender(api_url=fake_telegram.base_url, token=fake_telegram.token)
    try:
        await sender.send(chat_id="4242", text="Top-up T-1 done")
        assert fake_telegram.last(CHAT).text == "Top-up T-1 done"
        with pytest.raises(ProviderUnavailable, match="(?i)retry after 1"):
            await sender.send(chat_id=CHAT, text="too soon")
        fake_telegram.block(CHAT + 1)
        with pytest.raises(ProviderRejected, match="(?i)blocked"):
            await sender.send(chat_id=CHAT + 1, text="blocked")
    finally:
        await sender.close()


PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


async def test_a_photo_from_ptb_and_from_core_s_sender(
    fake_telegram: FakeTelegram, bot: Bot
) -> None:
    """PTB's send_photo and TelegramSender.send_photo both land as photos with their sizes; a
    file that is not an image is refused as Telegram refuses it."""
    fake_telegram.limits = False  # three sends to one chat at once
    sent = await bot.send_photo(CHAT, photo=PNG_1x1, caption="Sales")
    assert sent.photo[-1].width == 1 and sent.caption == "Sales"
    sender = TelegramSender(api_url=fake_telegram.base_url, token=fake_telegram.token)
    try:
        message_id = await sender.send_photo(chat_id=CHAT, photo=PNG_1x1, caption="Mauzo")
        assert message_id == fake_telegram.last(CHAT).message_id
        with pytest.raises(ProviderRejected, match="IMAGE_PROCESS_FAILED"):
            await sender.send_photo(chat_id=CHAT, photo=b"not an image")
    finally:
        await sender.close()
    assert [p.content for p in fake_telegram.photos] == [PNG_1x1, PNG_1x1]
    assert fake_telegram.last(CHAT).caption == "Mauzo"
