"""Deadlines over HTTP against the real app: a confirmation that cannot move money within its
hop's budget says "try again" in time, and nothing is made later (issue 14: 49 top-ups were made
about 3 min 20 s after their users had been left with no answer).

The retailer's stock rows are held by another connection for longer than the budget, as a long
transaction elsewhere would: on PostgreSQL its balance rows ``FOR UPDATE``, on SQLite the write
lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import func, select

from airgate.server import build_app
from core.context import Core
from core.i18n import t
from core.logging import configure, secrets_of
from core.models import Scope, Topup
from core.models.ledger import Reservation
from core.security import Pin
from core.services import apikeys, links, parties
from core.services.audit import Actor
from core.services.seed import seed_demo
from core.settings import Settings, UssdGateway
from tests.channels.conftest import SECRET, AtPhone, Telegram

RETAILER = "+254700000001"
CUSTOMER = "0788123456"
PIN = "7391"  # distinctive: not finding it in the logs means something
DEADLINE_S = 1.5
# What a loaded, shared test machine may add to the answer's way back; a hop that waited for the
# lock would take as long as it is held (DEADLINE_S + HELD_PAST_S at least).
MARGIN_S = 0.8
HELD_PAST_S = 1.5
T = TypeVar("T")
TRY_AGAIN = "That took too long and nothing was done. Please try again."


@pytest.fixture
def app_settings(settings: Settings, redis_url: str) -> Settings:
    """The channels' settings (tests/channels/conftest.py) with every budget at DEADLINE_S."""
    budgets = dict.fromkeys(("hop_deadline_s", "api_deadline_s", "telegram_deadline_s"), DEADLINE_S)
    return settings.model_copy(
        update={"redis_url": redis_url, "ussd_secret": SecretStr(SECRET), **budgets}
    )


@pytest.fixture
async def client(app_settings: Settings, core: Core) -> AsyncIterator[TestClient]:
    await seed_demo(core, retailers=3)
    await parties.set_pin(core, actor=Actor.cli(), ref=RETAILER, pin=Pin(PIN))
    async with TestClient(TestServer(build_app(app_settings))) as test_client:
        yield test_client


@pytest.fixture
def logs(app_settings: Settings, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """What ``airgate serve`` logs at DEBUG, read at the end of the test."""
    configure(level="DEBUG", json=False, secrets=secrets_of(app_settings))
    yield lambda: "".join(capsys.readouterr())


async def _party_id(core: Core, ref: str) -> int:
    async with core.sessions() as session:
        party = await parties.get_party(session, ref, country="KE")
    assert party.id is not None
    return party.id


@asynccontextmanager
async def stock_rows_held(core: Core, party_id: int) -> AsyncIterator[None]:
    """The party's balance rows locked by another connection until the block ends."""
    if core.engine.dialect.name == "postgresql":
        dsn = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM account WHERE party_id = $1 FOR UPDATE", party_id)
                yield
                raise _Release
        except _Release:
            pass
        finally:
            await conn.close()
        return
    holder = sqlite3.connect(str(core.engine.url.database), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


class _Release(Exception):
    """Rolls the holder's transaction back."""


async def _made(core: Core) -> tuple[int, int]:
    """(top-ups, reservations) in the database."""
    async with core.sessions() as session:
        topups = (await session.execute(select(func.count()).select_from(Topup))).scalar()
        held = (await session.execute(select(func.count()).select_from(Reservation))).scalar()
    return int(topups or 0), int(held or 0)


async def _timed(answer: Awaitable[T]) -> tuple[float, T]:
    """How long ``answer`` took; it fails past the deadline and the margin."""
    started = time.monotonic()
    result = await asyncio.wait_for(answer, DEADLINE_S + MARGIN_S)
    return time.monotonic() - started, result


def _no_number_or_pin(lines: str) -> None:
    for secret in ("788123456", "700000001", PIN):
        assert secret not in lines, secret


async def test_a_confirm_out_of_time_says_try_again_and_nothing_is_made_later(
    client: TestClient, core: Core, logs: Callable[[], str]
) -> None:
    phone = AtPhone(client, RETAILER)
    await phone.dial()
    for text in ("1", CUSTOMER, "500"):
        await phone.send(text)
    async with stock_rows_held(core, await _party_id(core, RETAILER)):
        took, answer = await _timed(phone.send(PIN))
        assert TRY_AGAIN in answer, answer
        assert took <= DEADLINE_S + MARGIN_S
        await asyncio.sleep(HELD_PAST_S)  # held past the deadline, as in the issue
    await asyncio.sleep(1.0)  # a hop still waiting on the lock would have made it by now
    assert await _made(core) == (0, 0)
    # The session is where it was: the same confirmation, with the rows free, goes through once.
    assert answer.startswith("CON ") and "Enter PIN to confirm" in answer
    done = await phone.send(PIN)
    assert "accepted" in done, done
    assert await _made(core) == (1, 1)
    _no_number_or_pin(logs())


async def test_a_gateways_own_deadline_is_the_one_its_hops_keep(
    app_settings: Settings, core: Core
) -> None:
    await seed_demo(core, retailers=3)
    settings = app_settings.model_copy(
        update={
            "hop_deadline_s": 30.0,
            "ussd_gateways": {"africastalking": UssdGateway(deadline_s=DEADLINE_S)},
        }
    )
    async with TestClient(TestServer(build_app(settings))) as client:
        phone = AtPhone(client, RETAILER)
        await phone.dial()
        for text in ("1", CUSTOMER, "500"):
            await phone.send(text)
        async with stock_rows_held(core, await _party_id(core, RETAILER)):
            took, answer = await _timed(phone.send("1234"))
            assert TRY_AGAIN in answer and took <= DEADLINE_S + MARGIN_S
    assert await _made(core) == (0, 0)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a row lock of its own
async def test_a_hop_out_of_time_before_money_ends_in_time_and_dialling_again_works(
    client: TestClient, core: Core
) -> None:
    """The retailer's own row held: its PIN check (no money step, no lock_timeout) waits until
    the hop's timer gives up; the caller gets a polite END in time, and the next dial works."""
    phone = AtPhone(client, RETAILER)
    await phone.dial()
    for text in ("1", CUSTOMER, "500"):
        await phone.send(text)
    dsn = core.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    holder = await asyncpg.connect(dsn)
    try:
        async with holder.transaction():
            party = await _party_id(core, RETAILER)
            await holder.execute("SELECT 1 FROM party WHERE id = $1 FOR UPDATE", party)
            took, answer = await _timed(phone.send(PIN))
            assert took <= DEADLINE_S + MARGIN_S
            assert answer == f"END {TRY_AGAIN}"
            await asyncio.sleep(HELD_PAST_S)
    finally:
        await holder.close()
    await asyncio.sleep(1.0)
    assert await _made(core) == (0, 0)
    again = phone.redial()
    # Dialling again offers the journey where it was, the confirmation, as after any drop.
    assert "Continue where you left off" in await again.dial()
    assert "Enter PIN to confirm" in await again.send("1")
    assert "accepted" in await again.send(PIN)
    assert await _made(core) == (1, 1)


async def test_a_telegram_confirm_out_of_time_says_so_in_the_users_language(
    telegram: Telegram, core: Core, redis_url: str
) -> None:
    shop = await _party_id(core, RETAILER)
    await parties.set_language(core, actor=Actor.cli(), party_id=shop, language="sw")
    redis = aioredis.Redis.from_url(redis_url)
    code = (
        await links.invite(core, redis, actor=Actor.system(), party_ref=RETAILER, ttl_s=600)
    ).code
    await redis.aclose()
    user = 5001
    await telegram.say(user, f"/start {code}")
    await telegram.say(user, "/topup")
    await telegram.say(user, CUSTOMER)
    await telegram.say(user, "500")
    async with stock_rows_held(core, shop):
        took, _ = await _timed(telegram.say(user, "1234"))
        assert took <= DEADLINE_S + MARGIN_S
        assert telegram.screen(user).startswith(t("sw", "error.deadline_exceeded"))
        await asyncio.sleep(HELD_PAST_S)
    await asyncio.sleep(1.0)
    assert await _made(core) == (0, 0)
    await telegram.say(user, "1234")  # the same confirmation again
    assert await _made(core) == (1, 1)


async def test_the_api_answers_503_in_time_and_the_same_key_goes_through_after(
    client: TestClient, core: Core, logs: Callable[[], str]
) -> None:
    made = await apikeys.create(core, actor=Actor.cli(), party_ref=RETAILER, scopes=[Scope.TOPUP])
    headers = {"Authorization": f"Bearer {made.key}", "Idempotency-Key": "late-1"}
    body = {"msisdn": CUSTOMER, "amount_minor": 50_000}
    async with stock_rows_held(core, await _party_id(core, RETAILER)):
        took, response = await _timed(client.post("/api/v1/topups", json=body, headers=headers))
        assert took <= DEADLINE_S + MARGIN_S
        problem = await response.json(content_type=None)
        assert response.status == 503, problem
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.headers["Retry-After"] == "1"
        assert problem["type"] == "urn:airgate:problem:deadline_exceeded"
        assert "788123456" not in str(problem)
        await asyncio.sleep(HELD_PAST_S)
    await asyncio.sleep(1.0)
    assert await _made(core) == (0, 0)
    again = await client.post("/api/v1/topups", json=body, headers=headers)
    assert again.status == 202, await again.text()
    assert await _made(core) == (1, 1)
    _no_number_or_pin(logs())
