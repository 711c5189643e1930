"""``POST /telegram/webhook``: Telegram's updates into the bot's handlers.

Invariant: nothing is read or processed unless the ``X-Telegram-Bot-Api-Secret-Token`` header
equals the secret given to setWebhook (compared in constant time): otherwise 403. A body that is
not an update python-telegram-bot can read (whatever it raises) is 400, logged once without its
content. A handled update answers 200 even when a handler failed (it is logged):
Telegram would only redeliver it, and the redelivery is ignored as already seen.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from core.logging import get_logger
from core.security import kept_secret
from core.settings import Settings

log = get_logger(__name__)

PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_secret(settings: Settings) -> str:
    path = Path(settings.var_dir) / "telegram_webhook_secret"
    return kept_secret(
        configured=settings.telegram_webhook_secret.get_secret_value(),
        path=path,
        make=secrets.token_urlsafe,
    )


def add_route(
    app: web.Application,
    *,
    settings: Settings,
    application: web.AppKey[Application],  # type: ignore[type-arg]
) -> None:
    secret = webhook_secret(settings).encode()

    async def webhook(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, secret):
            return web.Response(status=403, text="forbidden")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError, LookupError, RecursionError) as exc:
            return _refused("the body is not JSON", exc)
        bot_app = request.app[application]
        try:
            update = Update.de_json(body, bot_app.bot) if isinstance(body, dict) else None
        # Whatever python-telegram-bot raises on a body it cannot read (AttributeError for a
        # string where an object goes, OverflowError for a date past 2038^n, RecursionError…)
        # says the same: this is not an update.
        except Exception as exc:
            return _refused("not an update", exc)
        if update is None:
            return _refused("not an update", None)
        try:
            await bot_app.process_update(update)
        # A handler's failure is caught and logged by the application itself: what reaches here
        # is its machinery choking on a field of the wrong type (a list for a chat id).
        except Exception as exc:
            return _refused("not an update", exc)
        return web.Response(text="ok")

    app.router.add_post(PATH, webhook)


def _refused(reason: str, exc: BaseException | None) -> web.Response:
    """400, logged once with the error's type only: the body may carry anyone's messages."""
    error = None if exc is None else type(exc).__name__
    log.info("Telegram update refused", reason=reason, error=error)
    return web.Response(status=400, text=f"bad request: {reason}")
