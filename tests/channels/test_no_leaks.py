"""No PIN, secret or full phone number leaves its place, on any channel, in any log mode.

Full journeys on every channel (Africa's Talking, Hubtel and Arkesel over the real aiohttp app;
Telegram through the real PTB Application against the fake Bot API), wrong PINs, a PIN change,
and an internal error forced in the middle of a PIN step by taking the database away for real.
Logs are captured as ``airgate serve`` writes them (core.logging.configure) at DEBUG and INFO,
console and JSON; afterwards every Redis key and value and every database row is dumped. The
PINs and secrets are distinctive so that not finding them means something.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import SQLModel

from airgate.server import CORE, build_app
from core.context import Core
from core.logging import configure, secrets_of
from core.models import AuditEvent
from core.security import Pin
from core.services import links, parties
from core.services.audit import Actor
from core.services.seed import DISTRIBUTOR_MSISDN, PLATFORM_MSISDN, seed_demo
from core.settings import Settings, load_settings
from tests.channels.test_ussd_dialects import Handset
from tests.conftest import PG_ADMIN_URL
from tests.fakes.telegram_api import FakeTelegram

PIN, NEW_PIN = "7391", "8264"
WRONG = ("5173", "6048")  # two wrong tries: one short of the lock
PINS = (PIN, NEW_PIN, *WRONG)
SHOPS = {"africastalking": "+254700000001", "hubtel": "+254700000002", "arkesel": "+254700000003"}
TELEGRAM_SHOP = "+254700000004"
CUSTOMER = "0788123456"
USER = 7001
SECRETS = {
    "pin_pepper": "pepper-Zq8Kx2Lm9Vw4Rt7Y",
    "ussd_secret": "ussd-Hj3Nc8Pq5Xv1Rw",
    "telegram_webhook_secret": "hook-Bf6Tg2Wk9Ms4",
    "telegram_token": "918273:Tok-Xr7Vb2Nq9Lc4Hz",
    "provider_client_secret": "prov-Kd7Rj3Fs8Lq2",
    "sms_api_key": "sms-Vx5Pn1Gc7Dt9",
}
NUMBERS = (
    *SHOPS.values(),
    TELEGRAM_SHOP,
    DISTRIBUTOR_MSISDN,
    PLATFORM_MSISDN,
    "+254" + CUSTOMER[1:],
)
# Columns whose job is to hold a number: who a party is, whom a top-up is for, who called.
NUMBER_COLUMNS = {"msisdn", "recipient_msisdn"}
MODES = [("DEBUG", False), ("DEBUG", True), ("INFO", False), ("INFO", True)]


def pin_pattern(pin: str) -> re.Pattern[str]:
    """The PIN as typed: not part of a longer run of digits or hex (a timestamp's microseconds or
    a digest may contain the four digits by chance)."""
    return re.compile(rf"(?<![0-9a-fA-F]){pin}(?![0-9a-fA-F])")


def number_pattern(e164: str) -> re.Pattern[str]:
    """The number in any form: +254700000001, 254700000001, 0700000001."""
    country, subscriber = e164[1:-9], e164[-9:]
    return re.compile(rf"(?<!\d)(?:\+?{country}|0){subscriber}(?!\d)")


def leaks(text: str, *, numbers: bool = True) -> list[str]:
    found = [f"PIN {pin}" for pin in PINS if pin_pattern(pin).search(text)]
    found += [f"secret {name}" for name, value in SECRETS.items() if value in text]
    if numbers:
        found += [f"number {n}" for n in NUMBERS if number_pattern(n).search(text)]
    return found


@pytest.fixture(params=MODES, ids=lambda mode: f"{mode[0]}-{'json' if mode[1] else 'console'}")
def log_mode(request: pytest.FixtureRequest) -> tuple[str, bool]:
    return request.param


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The suite's settings with this module's distinctive pepper: ``core`` hashes PINs with it."""
    return load_settings(
        database_url=database_url, var_dir=tmp_path / "var", pin_pepper=SECRETS["pin_pepper"]
    )


@pytest.fixture
def leak_settings(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={k: SecretStr(v) for k, v in SECRETS.items()})


class Phone(Handset):
    def post(self, body: Any, *, token: str | None = None, headers: Any = None) -> Any:
        return super().post(body, token=SECRETS["ussd_secret"], headers=headers)


@asynccontextmanager
async def serving(settings: Settings, fake: FakeTelegram) -> AsyncIterator[TestClient]:
    settings = settings.model_copy(update={"telegram_api_url": fake.base_url})
    async with TestClient(TestServer(build_app(settings))) as client:
        yield client


async def dialled(client: TestClient, dialect: str, *hops: str) -> tuple[str, bool]:
    """A new session on ``dialect``'s gateway; the answer to its last hop."""
    phone = Phone(client, dialect, msisdn=SHOPS[dialect])
    answer = await phone.dial()
    for hop in hops:
        answer = await phone.send(hop)
    return answer


async def ussd_journeys(client: TestClient) -> None:
    """Every gateway: top-up after two wrong PINs, balance, statement, PIN change, balance."""
    for dialect in SHOPS:
        page, final = await dialled(client, dialect, "1", CUSTOMER, "500", *WRONG, PIN)
        assert final and page.startswith("Top-up of KES 500"), page
        for choice in ("3", "5"):
            page, final = await dialled(client, dialect, choice, PIN)
            assert final and not page.startswith("Wrong"), page
        changed = await dialled(client, dialect, "7", "1", NEW_PIN, NEW_PIN, PIN)
        assert changed == ("Your PIN was changed.", True)
        page, final = await dialled(client, dialect, "3", NEW_PIN)
        assert final and page.startswith("Your balance:"), page


class Chat:
    def __init__(self, client: TestClient, fake: FakeTelegram) -> None:
        self.client, self.fake = client, fake

    async def post(self, update: dict[str, object]) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_webhook_secret"]}
        response = await self.client.post("/telegram/webhook", json=update, headers=headers)
        assert response.status == 200

    async def say(self, words: str) -> str:
        command = words.startswith("/")
        update = (self.fake.user_command if command else self.fake.user_message)(USER, words)
        await self.post(update)
        return self.fake.last(USER).text

    async def press(self, label: str) -> str:
        await self.post(self.fake.press(USER, label))
        return self.fake.last(USER).text


async def telegram_journeys(client: TestClient, fake: FakeTelegram, core: Core) -> None:
    client_redis = aioredis.Redis.from_url(client.server.app[CORE].settings.redis_url)
    invite = await links.invite(
        core, client_redis, actor=Actor.system(), party_ref=TELEGRAM_SHOP, ttl_s=600
    )
    await client_redis.aclose()
    chat = Chat(client, fake)
    await chat.say(f"/start {invite.code}")
    await chat.press("Airtime top-up")
    await chat.say(CUSTOMER)
    await chat.say("500")
    for wrong in WRONG:
        assert (await chat.say(wrong)).startswith("Wrong PIN."), fake.last(USER).text
    assert (await chat.say(PIN)).startswith("Top-up of KES 500"), fake.last(USER).text
    await chat.say("/balance")
    assert (await chat.say(PIN)).startswith("Your balance:")
    await chat.say("/statement")
    await chat.say(PIN)
    assert fake.documents, "the statement was sent"
    await chat.say("/menu")
    await chat.press("My account")
    await chat.press("Change PIN")
    await chat.say(NEW_PIN)
    await chat.say(NEW_PIN)
    assert await chat.say(PIN) == "Your PIN was changed."


def _set_aside(path: Path) -> None:
    path.rename(path.with_name("away.db"))


def _give_back(path: Path) -> None:
    for stray in path.parent.glob(f"{path.name}*"):  # the empty file a connect made meanwhile
        stray.unlink()
    path.with_name("away.db").rename(path)


@asynccontextmanager
async def database_gone(app_core: Core, test_core: Core) -> AsyncIterator[None]:
    """The database taken away for real, then given back: SQLite's file moved aside (every
    connection closed first, so the file is the whole database), PostgreSQL's database closed
    to connections and its sessions ended."""
    url = app_core.settings.effective_database_url
    await app_core.engine.dispose()
    await test_core.engine.dispose()
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        _set_aside(path)
        try:
            yield
        finally:
            await app_core.engine.dispose()
            _give_back(path)
            await app_core.engine.dispose()
        return
    name = urlparse(url).path.strip("/")
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        try:
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            await app_core.engine.dispose()
    finally:
        await admin.close()


async def fail_in_a_pin_step(client: TestClient, fake: FakeTelegram, core: Core) -> None:
    app_core = client.server.app[CORE]
    phone = Phone(client, "africastalking", msisdn=SHOPS["africastalking"])
    await phone.dial()
    for hop in ("1", CUSTOMER, "500"):
        await phone.send(hop)  # on the PIN step
    chat = Chat(client, fake)
    await chat.say("/balance")
    async with database_gone(app_core, core):
        page, final = await phone.send(NEW_PIN)
        assert final and page.startswith("Sorry, that did not work."), page
        await chat.say(NEW_PIN)
    # What to do after a failure is a later slice's: here only that it left no trace.


async def dump_redis(url: str) -> tuple[str, str]:
    """Every Redis key and value as text: (the keys' names, the keys with their values)."""
    client = aioredis.Redis.from_url(url)
    names: list[str] = []
    lines: list[str] = []
    try:
        async for key in client.scan_iter(count=1000):
            kind = (await client.type(key)).decode()
            if kind == "string":
                value: object = await client.get(key)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            elif kind == "set":
                value = await client.smembers(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1, withscores=True)
            else:
                value = await client.xrange(key) if kind == "stream" else kind
            names.append(key.decode(errors="replace"))
            lines.append(f"{key!r} {value!r}")
    finally:
        await client.aclose()
    return "\n".join(names), "\n".join(lines)


async def dump_rows(core: Core) -> tuple[str, str]:
    """Every row of every table as text: (the columns that hold numbers, all the others)."""
    numbered, other = [], []
    async with core.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in (await conn.execute(select(table))).mappings():
                for column, value in row.items():
                    line = f"{table.name}.{column}={value!r}"
                    (numbered if column in NUMBER_COLUMNS else other).append(line)
    return "\n".join(numbered), "\n".join(other)


async def test_no_pin_secret_or_number_in_logs_redis_or_rows(
    leak_settings: Settings,
    core: Core,
    log_mode: tuple[str, bool],
    capsys: pytest.CaptureFixture[str],
) -> None:
    level, as_json = log_mode
    await seed_demo(core, retailers=4)
    for msisdn in (*SHOPS.values(), TELEGRAM_SHOP):
        await parties.set_pin(core, actor=Actor.cli(), ref=msisdn, pin=Pin(PIN))
    configure(level=level, json=as_json, secrets=secrets_of(leak_settings))
    fake = FakeTelegram(SECRETS["telegram_token"], limits=False)
    async with fake, serving(leak_settings, fake) as client:
        await ussd_journeys(client)
        await telegram_journeys(client, fake, core)
        await fail_in_a_pin_step(client, fake, core)
    captured = capsys.readouterr()
    logs = captured.out + captured.err
    assert "USSD hop failed" in logs and "Traceback" in logs  # the failure was logged, in full
    if as_json:
        for line in captured.out.splitlines():
            json.loads(line)
    assert leaks(logs) == [], logs
    # Redis holds the journey's working data for its TTL (the number being topped up, the
    # delivery job): numbers in values, never a PIN or a secret; no number in a key's name (a
    # resume point is keyed by a keyed digest of the caller's number).
    names, stored = await dump_redis(leak_settings.redis_url)
    assert "airgate:r:ussd:" in names and leaks(names) == [], names
    assert leaks(stored, numbers=False) == [], stored
    numbered, other = await dump_rows(core)
    assert leaks(numbered, numbers=False) == [], numbered
    assert leaks(other) == [], other
    async with core.sessions() as session:
        wrong = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "party.pin_wrong")
                )
            )
            .scalars()
            .all()
        )
    # Two wrong tries on each of the four channels, each with who, where and when.
    assert sorted(event.channel for event in wrong) == ["telegram"] * 2 + ["ussd"] * 6
    assert all(event.subject_party_id and event.at for event in wrong)
