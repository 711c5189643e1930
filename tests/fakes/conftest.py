"""The fake Telegram Bot API fixture, for the tests of the fake itself."""

from tests.fakes.telegram_api import fake_telegram  # noqa: F401
