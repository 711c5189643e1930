"""Sending and editing Telegram messages through the Bot API with the aiohttp client (the worker's
notifications and broadcasts).

The bot itself (bot/) uses python-telegram-bot; the worker only needs ``sendMessage``,
``editMessageText`` and ``sendPhoto`` (the daily report's chart), and core may not import
``telegram``. With a :class:`~core.ratelimit.Limiter`
every send first waits for its moment under the bot's and the chat's limits.

Errors map to the provider tree by what is known of the message:
- not sent: a 429 is :class:`Throttled` (its ``retry_after`` also pauses the limiter), a 5xx or a
  connection refused is ProviderUnavailable;
- refused: 403 blocked / deactivated is :class:`RecipientBlocked`, other 4xx ProviderRejected;
- maybe sent: a time-out or a connection lost after the request went out is OutcomeUnknown.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from core.errors import (
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RecipientBlocked,
    Throttled,
)
from core.ratelimit import Limiter

NAME = "telegram"
MAX_CAPTION = 1024  # characters of a photo's or a document's caption
# Telegram's 403 descriptions for a user the bot can no longer write to.
_GONE = ("blocked by the user", "user is deactivated", "bot can't initiate conversation")


class TelegramSender:
    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        session: aiohttp.ClientSession | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        # The same convention as python-telegram-bot's base_url: "https://api.telegram.org/bot".
        self._base = f"{api_url}{token}/"
        self._session = session
        self._own = session is None
        self.limiter = limiter

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def send(self, *, chat_id: int | str, text: str, paced: bool = True) -> int:
        """Send ``text``; the new message's id. ``paced=False``: the caller waited already."""
        if paced and self.limiter is not None:
            await self.limiter.wait(chat_id)
        result = await self._call("sendMessage", {"chat_id": chat_id, "text": text})
        return int(result.get("message_id", 0)) if isinstance(result, dict) else 0

    async def send_photo(
        self,
        *,
        chat_id: int | str,
        photo: bytes,
        caption: str = "",
        filename: str = "chart.png",
        paced: bool = True,
    ) -> int:
        """Send an image (``sendPhoto``, multipart) with an optional caption; the message's id."""
        if paced and self.limiter is not None:
            await self.limiter.wait(chat_id)
        form = aiohttp.FormData()
        form.add_field("chat_id", str(chat_id))
        if caption:
            form.add_field("caption", caption)
        form.add_field("photo", photo, filename=filename, content_type="image/png")
        result = await self._call("sendPhoto", form)
        return int(result.get("message_id", 0)) if isinstance(result, dict) else 0

    async def edit(self, *, chat_id: int | str, message_id: int, text: str) -> None:
        """Replace a message's text; an edit that changes nothing is not an error."""
        params = {"chat_id": chat_id, "message_id": message_id, "text": text}
        try:
            await self._call("editMessageText", params)
        except ProviderRejected as exc:
            if "not modified" not in str(exc):
                raise

    async def _call(self, method: str, params: dict[str, Any] | aiohttp.FormData) -> Any:
        session = await self._client()
        sent: dict[str, Any] = (
            {"data": params} if isinstance(params, aiohttp.FormData) else {"json": params}
        )
        try:
            async with session.post(f"{self._base}{method}", **sent) as resp:
                body: dict[str, Any] = await resp.json(content_type=None)
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent
            raise ProviderUnavailable(provider=NAME, detail=type(exc).__name__) from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OutcomeUnknown(provider=NAME, detail=type(exc).__name__) from None
        if body.get("ok"):
            return body.get("result")
        detail = str(body.get("description", resp.status))
        if resp.status == 429:
            retry = float((body.get("parameters") or {}).get("retry_after") or 1)
            if self.limiter is not None:
                await self.limiter.pause(retry)
            raise Throttled(provider=NAME, retry_after_s=retry)
        if resp.status >= 500:
            raise ProviderUnavailable(provider=NAME, detail=detail)
        if resp.status == 403 and any(gone in detail for gone in _GONE):
            raise RecipientBlocked(provider=NAME, detail=detail, error_code="403")
        raise ProviderRejected(provider=NAME, detail=detail, error_code=str(resp.status))

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
