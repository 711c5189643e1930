"""The Telegram channel: python-telegram-bot handlers that turn updates into the engine's turns.

Invariant: every update is handled at most once (its ``update_id`` is claimed in Redis first, so a
webhook retry or a second instance behind the same webhook does nothing), and a chat can act only
for the party its Telegram account is linked to (the engine identifies the party by that account;
an unlinked account is only offered ways to link). No ConversationHandler and no PTB persistence:
the conversation is the shared engine's, in the same Redis sessions as USSD.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import render
from bot.request import AiohttpRequest
from core import deadline
from core.conversation.channel import Channel, Identifies, Shows
from core.conversation.engine import Engine, Style
from core.conversation.flow import T
from core.conversation.types import Screen, Turn
from core.errors import AirGateError, AlreadyExists, DeadlineExceeded, NotFound, StoreUnavailable
from core.i18n import DEFAULT_LANGUAGE, t
from core.logging import get_logger
from core.redis import Client
from core.services import links, parties
from core.settings import Settings
from core.stores import redis_errors

log = get_logger(__name__)

# The Telegram channel as the core knows it (core/conversation/channel.py): a user is their
# Telegram account, linked to a party; a chat outlives its journeys.
CHANNEL = Channel(
    name="telegram",
    session_ttl_s=lambda settings: settings.telegram_session_ttl_s,
    identifies=Identifies.ACCOUNT,
    shows=frozenset({Shows.CONTACT, Shows.DOCUMENT}),
    restart_after_end=True,
)
SEEN_PREFIX = "airgate:tg:update:"
SEEN_TTL_S = 86_400  # Telegram retries a webhook delivery for hours at most
STYLE = Style(pages=render.pages)
ALLOWED_UPDATES = ["message", "callback_query"]  # what the handlers read; Telegram sends no more
# Commands that jump to a menu item: the option values to choose, in order, from the main menu.
SHORTCUTS: dict[str, Sequence[str]] = {
    "menu": (),
    "balance": (T.BALANCE,),
    "topup": (T.AIRTIME,),
    "language": (T.ACCOUNT, T.LANGUAGE),
}

Context = ContextTypes.DEFAULT_TYPE


class TelegramChannel:
    def __init__(self, *, engine: Engine, redis: Client, settings: Settings) -> None:
        self.engine = engine
        self.redis = redis
        self.settings = settings

    def build(self, *, polling: bool = False) -> Application:  # type: ignore[type-arg]
        # PTB 22 warns on every RetryAfter unless durations are timedeltas; we want those anyway.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        builder: ApplicationBuilder = (  # type: ignore[type-arg]
            ApplicationBuilder()
            .token(self.settings.telegram_token.get_secret_value())
            .base_url(self.settings.telegram_api_url)
            .base_file_url(self.settings.telegram_api_url.replace("/bot", "/file/bot", 1))
            .request(AiohttpRequest())
            .get_updates_request(AiohttpRequest(connections=1))
        )
        if not polling:
            builder = builder.updater(None)
        application = builder.build()
        application.add_handler(TypeHandler(Update, self.once), group=-1)
        application.add_error_handler(self.on_error)
        application.add_handler(CommandHandler("start", self.on_start))
        application.add_handler(CommandHandler("help", self.on_help))
        application.add_handler(CommandHandler("statement", self.on_statement))
        application.add_handler(CommandHandler(list(SHORTCUTS), self.on_shortcut))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_handler(MessageHandler(filters.CONTACT, self.on_contact))
        application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.on_text))
        return application

    # -- handlers -------------------------------------------------------------------------------

    async def once(self, update: Update, _context: Context) -> None:
        """Runs before every handler: a repeated update, or one from a group (where others could
        press a party's buttons), goes no further."""
        chat = update.effective_chat
        if chat is None or chat.type != ChatType.PRIVATE:
            raise ApplicationHandlerStop
        key = f"{SEEN_PREFIX}{update.update_id}"
        with redis_errors():
            seen = not await self.redis.set(key, 1, nx=True, ex=SEEN_TTL_S)
        if seen:
            log.info("repeated update ignored", update_id=update.update_id)
            raise ApplicationHandlerStop

    async def on_start(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        await links.unblocked(self.engine.core, telegram_user_id=user.id)  # back from a block
        if context.args:
            try:
                party = await links.redeem(
                    self.engine.core, self.redis, code=context.args[0], telegram_user_id=user.id
                )
            except NotFound:
                await message.reply_text(t(DEFAULT_LANGUAGE, "link.bad_code"))
                return
            except AlreadyExists:
                await message.reply_text(t(DEFAULT_LANGUAGE, "link.taken"))
                return
            except AirGateError as exc:  # the party was suspended since the code was made
                await message.reply_text(self.engine.describe(DEFAULT_LANGUAGE, exc))
                return
            screen = await self._turn(update, "", new=True)
            await self._show(message, screen, above=t(party.language, "link.done", name=party.name))
            return
        await self._show(message, await self._turn(update, "", new=True))

    async def on_help(self, update: Update, _context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        party = await parties.identify(
            self.engine.core, channel=CHANNEL.name, user_ref=str(user.id)
        )
        await message.reply_text(t(party.language if party else DEFAULT_LANGUAGE, "link.help"))

    async def on_shortcut(self, update: Update, _context: Context) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        command = message.text.split()[0][1:].split("@")[0].lower()
        screen = await self._turn(update, "", new=True)
        for value in SHORTCUTS.get(command, ()):
            numbers = [str(i) for i, o in enumerate(screen.options, 1) if o.value == value]
            if screen.final or not numbers:
                break  # not on this role's menu: show where we are
            screen = await self._turn(update, numbers[0])
        await self._show(message, screen)

    async def on_button(self, update: Update, _context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        await query.answer()  # every press is answered, or the client shows a spinner
        if not isinstance(query.message, Message) or not query.data:
            return
        number, _, shown = query.data[:16].partition(render.SEP)
        screen = await self._turn(update, number, shown=shown or None)
        try:
            await query.message.edit_text(screen.text, reply_markup=render.buttons(screen))
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise

    async def on_text(self, update: Update, _context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or message.text is None:
            return
        screen = await self._turn(update, message.text[:64])
        if screen.erase_input:
            await self._erase(message)
        await self._show(message, screen)

    async def on_contact(self, update: Update, _context: Context) -> None:
        """A shared contact is a turn whose input is the number, marked as the user's own only
        when Telegram says it is theirs (the link flow trusts nothing else)."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or message.contact is None:
            return
        own = message.contact.user_id == user.id
        screen = await self._turn(update, message.contact.phone_number[:20], contact=own)
        await self._show(message, screen)

    async def on_error(self, update: object, context: Context) -> None:
        """A handler failed (Telegram away, a 429, a bug): one log line, no token, no number. A
        store that is not there (StoreUnavailable) is said to the user, and the update goes no
        further (no second handler fails on it)."""
        update_id = update.update_id if isinstance(update, Update) else None
        error = context.error
        if isinstance(error, StoreUnavailable) and isinstance(update, Update):
            store = error.fields["store"]
            log.warning("telegram update without a store", update_id=update_id, store=store)
            await self._not_now(update, error)
            raise ApplicationHandlerStop
        log.error("telegram update failed", update_id=update_id, error=repr(error))

    async def on_statement(self, update: Update, context: Context) -> None:
        """``/statement [FROM] [TO]``: the statement flow's entry, the dates its first answer
        (core/conversation/flows/statement.py); the CSV document comes after the PIN."""
        message = update.effective_message
        if message is None:
            return
        dates = " ".join((context.args or [])[:2])[:32]
        await self._show(message, await self._turn(update, dates, new=True, entry=T.EXPORT))

    # -- helpers --------------------------------------------------------------------------------

    async def _turn(
        self,
        update: Update,
        text: str,
        *,
        new: bool = False,
        shown: str | None = None,
        contact: bool | None = None,
        entry: str | None = None,
    ) -> Screen:
        chat, user = update.effective_chat, update.effective_user
        assert chat is not None and user is not None
        turn = Turn(
            CHANNEL.name,
            str(chat.id),
            str(user.id),
            text,
            is_new=new,
            shown=shown,
            contact=contact,
            entry=entry,
        )
        try:
            async with deadline.bounded(self.settings.telegram_deadline_s):
                return await self.engine.handle(turn, STYLE)
        except DeadlineExceeded:  # nothing moved, the session as it was: send it again
            log.warning("telegram turn out of time")
            key = f"error.{DeadlineExceeded.code}"
            return await self.engine.farewell(channel=CHANNEL.name, user_ref=turn.user_ref, key=key)

    async def _show(self, message: Message, screen: Screen, *, above: str = "") -> None:
        """One message per update: a private chat takes about one a second."""
        text = f"{above}\n\n{screen.text}" if above else screen.text
        if screen.document is not None:
            document = screen.document
            await message.reply_document(document.content, filename=document.filename, caption=text)
            return
        await message.reply_text(text, reply_markup=render.markup(screen))

    async def _not_now(self, update: Update, error: StoreUnavailable) -> None:
        """Says "not available for a moment", in the user's language when the database can
        still say it (Redis was the one away)."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None:
            return
        ref = str(user.id) if user is not None and error.fields["store"] == "redis" else None
        key = f"error.{StoreUnavailable.code}"
        screen = await self.engine.farewell(channel=CHANNEL.name, user_ref=ref, key=key)
        try:
            if update.callback_query is not None:
                await update.callback_query.answer()  # or the client shows a spinner
            await update.get_bot().send_message(chat.id, screen.text)
        except TelegramError as exc:  # Telegram away too: nothing more we can do
            log.warning("could not say the service is away", error=str(exc))

    @staticmethod
    async def _erase(message: Message) -> None:
        """A PIN does not stay in the chat's history."""
        try:
            await message.delete()
        except TelegramError as exc:  # too old, or already gone: nothing more we can do
            log.warning("could not delete a PIN message", error=str(exc))
