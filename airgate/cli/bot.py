"""``airgate bot --polling`` (the Telegram bot without a public URL, for development) and
``airgate party invite`` (a one-time link that ties a Telegram account to a party)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from airgate.cli._run import CLI_POOL, JsonOpt, emit, exit_code, fail, out, run_async, settings
from airgate.cli.party import PartyArg
from core.context import open_core
from core.errors import AirGateError
from core.logging import configure, secrets_of
from core.redis import connected as redis_connected
from core.services import links
from core.services.audit import Actor


def bot(
    polling: Annotated[
        bool, typer.Option("--polling", help="Fetch updates with getUpdates (no webhook needed).")
    ] = False,
) -> None:
    """Run the Telegram bot by polling; in production `airgate serve` receives its webhook."""
    s = settings()
    configure(level=s.log_level, json=s.log_json, secrets=secrets_of(s))
    if not s.telegram_token:
        fail("set AIRGATE_TELEGRAM_TOKEN to run the bot")
    if not polling:
        fail("`airgate serve` serves the webhook; use --polling to run the bot without one")

    async def main() -> None:
        from airgate.server import conversation_engine, job_queue  # the server's parts, here
        from bot.channel import ALLOWED_UPDATES, TelegramChannel

        async with redis_connected(s) as redis, open_core(s) as core:
            queue = job_queue(s, redis)
            try:
                engine = conversation_engine(core, redis, queue=queue)
                application = TelegramChannel(engine=engine, redis=redis, settings=s).build(
                    polling=True
                )
                async with application:
                    await application.bot.delete_webhook()  # polling and a webhook exclude
                    await application.start()
                    assert application.updater is not None
                    await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
                    out.print(f"bot @{application.bot.username} polling; Ctrl-C stops it")
                    try:
                        await asyncio.Event().wait()
                    finally:
                        await application.updater.stop()
                        await application.stop()
            finally:
                await queue.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except AirGateError as exc:
        fail(str(exc), code=exit_code(exc))


def invite(
    party: PartyArg,
    hours: Annotated[
        int | None, typer.Option(min=1, max=720, help="How long the link works (default 72).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A one-time link that ties a Telegram account to PARTY (t.me/<bot>?start=CODE)."""
    s = settings()
    ttl_s = hours * 3600 if hours else s.telegram_invite_ttl_s

    async def main() -> tuple[links.Invite, str]:
        async with redis_connected(s) as redis, open_core(s.model_copy(update=CLI_POOL)) as core:
            made = await links.invite(core, redis, actor=Actor.cli(), party_ref=party, ttl_s=ttl_s)
        return made, await _bot_username(s.telegram_token.get_secret_value(), s.telegram_api_url)

    made, username = run_async(main())
    link = f"https://t.me/{username}?start={made.code}" if username else ""
    data = {"party": made.party.label, "code": made.code, "link": link, "ttl_s": made.ttl_s}

    def human() -> None:
        out.print(f"{made.party.label}: valid {made.ttl_s // 3600} h, once")
        out.print(link or f"send the bot: /start {made.code}   (no bot token: no t.me link)")

    emit(data, as_json=as_json, human=human)


async def _bot_username(token: str, api_url: str) -> str:
    if not token:
        return ""
    from telegram import Bot
    from telegram.error import TelegramError

    try:
        async with Bot(token, base_url=api_url) as telegram:
            return telegram.username
    except TelegramError:
        return ""
