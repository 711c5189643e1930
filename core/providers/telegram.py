"""Sending a Telegram message through the Bot API with the aiohttp client (notifications).

The bot itself (bot/) uses python-telegram-bot; the worker only needs ``sendMessage``, and core
may not import ``telegram``. Errors map to the provider tree: 429 and 5xx are ProviderUnavailable
(try later), 400/403 (chat not found, bot blocked) are ProviderRejected.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from core.errors import ProviderRejected, ProviderUnavailable

NAME = "telegram"


class TelegramSender:
    def __init__(
        self, *, api_url: str, token: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        # The same convention as python-telegram-bot's base_url: "https://api.telegram.org/bot".
        self._url = f"{api_url}{token}/sendMessage"
        self._session = session
        self._own = session is None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def send(self, *, chat_id: int | str, text: str) -> None:
        session = await self._client()
        try:
            async with session.post(self._url, json={"chat_id": chat_id, "text": text}) as resp:
                body: dict[str, Any] = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ProviderUnavailable(provider=NAME, detail=type(exc).__name__) from None
        if body.get("ok"):
            return
        detail = str(body.get("description", resp.status))
        if resp.status == 429 or resp.status >= 500:
            retry = (body.get("parameters") or {}).get("retry_after")
            raise ProviderUnavailable(provider=NAME, detail=f"{detail} (retry after {retry} s)")
        raise ProviderRejected(provider=NAME, detail=detail, error_code=str(resp.status))

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
