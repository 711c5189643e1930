"""``airgate party invite`` and ``airgate bot --polling`` as processes, against the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from tests.e2e.conftest import AIRGATE, CliRunner
from tests.fakes.telegram_api import FakeTelegram, fake_telegram  # noqa: F401


@pytest.fixture
def seeded(airgate: CliRunner, redis_url: str, fake_telegram: FakeTelegram) -> dict[str, str]:  # noqa: F811
    env = {
        "AIRGATE_REDIS_URL": redis_url,
        "AIRGATE_TELEGRAM_TOKEN": fake_telegram.token,
        "AIRGATE_TELEGRAM_API_URL": fake_telegram.base_url,
    }
    airgate("seed", "--demo", "--retailers", "2", **env)
    return env


async def test_an_invite_made_on_the_cli_links_through_the_polling_bot(
    airgate: CliRunner,
    cli_env: dict[str, str],
    seeded: dict[str, str],
    fake_telegram: FakeTelegram,  # noqa: F811
    tmp_path: object,
) -> None:
    # In a thread: the fake Bot API answers the command's getMe from this event loop.
    invited = await asyncio.to_thread(airgate, "party", "invite", "0700000001", "--json", **seeded)
    made = json.loads(invited.stdout)
    assert made["link"] == f"https://t.me/airgate_test_bot?start={made['code']}"
    bot = await asyncio.create_subprocess_exec(
        AIRGATE,
        "bot",
        "--polling",
        env={**cli_env, **seeded},
        cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        fake_telegram.push(fake_telegram.user_command(4242, f"/start {made['code']}"))
        await fake_telegram.wait_until(
            lambda: any(m.text.endswith("AirGate") for m in fake_telegram.chat(4242)),
            within=20,
        )
        assert fake_telegram.last(4242).text.startswith("Linked to Demo Shop 001.")
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGINT)
        try:
            out, err = await asyncio.wait_for(bot.communicate(), timeout=30)
        finally:
            if bot.returncode is None:  # it did not stop: it must not outlive the test
                bot.kill()
                await bot.wait()
    logs = out.decode() + err.decode()
    assert "Traceback" not in logs
    assert fake_telegram.token not in logs  # httpx logs request URLs, which carry the token


def test_the_bot_needs_a_token(airgate: CliRunner) -> None:
    result = airgate("bot", "--polling", ok=False)
    assert result.returncode == 1
    assert "AIRGATE_TELEGRAM_TOKEN" in result.stderr
