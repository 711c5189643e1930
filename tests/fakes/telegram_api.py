"""The fake Telegram Bot API for tests: :mod:`sandbox.telegram_api`, and its pytest fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.telegram_api import BOT_USERNAME, SECRET_HEADER, FakeTelegram, max_rate

__all__ = ["BOT_USERNAME", "SECRET_HEADER", "FakeTelegram", "fake_telegram", "max_rate"]


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A running FakeTelegram (limits on); tests may change its attributes, e.g. ``limits``."""
    async with FakeTelegram() as fake:
        yield fake
