"""Support journeys to each resolution, on USSD (the real app over HTTP) and Telegram (the real
Application against the fake Bot API), with the sandbox as the aggregator: a report answered at
once from its record; the distributor's refund, retry (refused while the aggregator is pending)
and close with a note; the shop told each outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from core.context import Core
from core.logging import configure
from core.models import Notification, PartyIdentity, Topup, TopupState
from core.providers.port import TopupOrder
from core.providers.reloadly import ReloadlyProvider
from core.services import links, parties, support
from core.services.audit import Actor
from core.services.seed import DEMO_PIN, DISTRIBUTOR_MSISDN
from core.services.topups import request_topup
from core.settings import Settings
from sandbox.config import SandboxConfig
from tests.channels.conftest import AtPhone, Telegram
from tests.lifecycle.conftest import sandbox_serving

SHOP = "+254700000001"
SHOP_USER, BOSS = 7201, 7001


@pytest.fixture
async def sandbox() -> AsyncIterator[str]:
    # …2 answers PROCESSING after 0.1 s and stays so: a pending outcome at the aggregator.
    async with sandbox_serving(SandboxConfig(hang_s=0.1, settle_s=3600, seed=7)) as url:
        yield url


@pytest.fixture
def debug_logs() -> Iterator[None]:
    """Every line at DEBUG, as JSON, as ``airgate serve`` would print it; defaults again after."""
    configure(level="DEBUG", json=True)  # tests/conftest.py restores the defaults after
    yield


@pytest.fixture
def app_settings(settings: Settings, redis_url: str, sandbox: str) -> Settings:
    from pydantic import SecretStr

    from tests.channels.conftest import SECRET

    return settings.model_copy(
        update={
            "redis_url": redis_url,
            "ussd_secret": SecretStr(SECRET),
            "provider_url": sandbox,
            "provider_auth_url": sandbox,
        }
    )


async def _topup(core: Core, number: str, *, at: Settings | None = None) -> Topup:
    """A shop's top-up, its stock held; sent to the aggregator (the sandbox) if ``at``."""
    async with core.sessions() as session:
        shop = await parties.get_party(session, SHOP, country="KE")
    topup = await request_topup(
        core, party_id=shop.id or 0, msisdn=number, amount_minor=5_000, channel="test"
    )
    if at is not None:
        adapter = ReloadlyProvider.from_settings(at)
        try:
            await adapter.send_topup(
                TopupOrder(
                    reference=topup.id,
                    msisdn=topup.msisdn,
                    country="KE",
                    operator="safaricom-ke",
                    operator_ref="1",
                    amount_minor=topup.amount_minor,
                    currency="KES",
                )
            )
        finally:
            await adapter.close()
    return topup


async def _escalated(core: Core, topup_id: str) -> None:
    """As the worker leaves a top-up still unknown past the window: escalated, a case open."""
    async with core.transaction() as session:
        topup = await session.get(Topup, topup_id)
        assert topup is not None
        topup.state = TopupState.ESCALATED
        await support.case_for_escalation(session, topup_id=topup_id, party_id=topup.party_id)


async def _tamper(url: str, **edit: object) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/sandbox/tamper", json=edit) as r:
        assert r.status == 200


async def _state(core: Core, topup_id: str) -> str:
    async with core.sessions() as session:
        topup = await session.get(Topup, topup_id)
    assert topup is not None
    return topup.state


async def _texts(core: Core) -> list[str]:
    async with core.sessions() as session:
        return [n.text for n in (await session.execute(select(Notification))).scalars()]


async def _boss_case(client: object, action: str) -> tuple[AtPhone, str]:
    """The distributor on USSD: menu 10, the first case, ``action`` (its number)."""
    boss = AtPhone(client, DISTRIBUTOR_MSISDN)  # type: ignore[arg-type]
    menu = await boss.dial()
    while "Support cases" not in menu:
        menu = await boss.send("98")
    item = next(line for line in menu.split("\n") if line.endswith(". Support cases"))
    await boss.send(item.split(".")[0])
    detail = await boss.send("1")
    assert detail.startswith("CON Case ") and "1. Retry (same reference)" in detail
    return boss, await boss.send(action)


async def test_ussd_a_report_is_answered_at_once_from_the_aggregators_record(
    client: object,
    core: Core,
    app_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    debug_logs: None,
) -> None:
    topup = await _topup(core, "0788123450", at=app_settings)  # delivered at the aggregator
    shop = AtPhone(client, SHOP)  # type: ignore[arg-type]
    await shop.dial()
    await shop.send("6")
    await shop.send("1")
    answer = await shop.send("1")
    assert answer.startswith("END KES 50 to 0788123450 was delivered on ")
    assert ", operator ref SBX" in answer and answer.endswith("closed.")
    assert await _state(core, topup.id) == TopupState.DELIVERED  # settled from its record
    logged = capsys.readouterr()
    assert '"case.reported"' in logged.out and '"msisdn": "+254788****50"' in logged.out
    assert "788123450" not in logged.out + logged.err  # never the customer's number


async def test_ussd_the_distributor_refunds_a_topup_the_aggregator_never_had(
    client: object, core: Core
) -> None:
    topup = await _topup(core, "0788123450")  # never sent
    await _escalated(core, topup.id)
    boss, confirm = await _boss_case(client, "2")
    assert confirm.startswith("CON Refund KES 50 to Demo Shop 001 for case ")
    done = await boss.send(DEMO_PIN)
    assert done.startswith("END Case ") and "the aggregator never had" in done
    assert "KES 50 returned to Demo Shop 001" in done
    assert await _state(core, topup.id) == TopupState.FAILED
    assert any("0788123450 FAILED, nothing was charged" in t for t in await _texts(core))


async def test_ussd_retry_is_refused_while_pending_then_settles_on_its_record(
    client: object, core: Core, app_settings: Settings, sandbox: str
) -> None:
    topup = await _topup(core, "0788123452", at=app_settings)  # PROCESSING at the aggregator
    await _escalated(core, topup.id)
    boss, confirm = await _boss_case(client, "1")
    assert confirm.startswith("CON Send KES 50 to 0788123452 again (ref ")
    refused = await boss.send(DEMO_PIN)
    assert refused.startswith("END Case ") and "has not given a final answer yet" in refused
    assert await _state(core, topup.id) == TopupState.ESCALATED
    await _tamper(sandbox, reference=topup.id, status="SUCCESSFUL")
    boss, _confirm = await _boss_case(client, "1")
    done = await boss.send(DEMO_PIN)
    assert "the aggregator delivered" in done and "settled delivered" in done
    assert await _state(core, topup.id) == TopupState.DELIVERED


async def test_ussd_a_disagreement_reopens_and_the_distributor_closes_it_with_a_note(
    client: object, core: Core, app_settings: Settings, sandbox: str
) -> None:
    topup = await _topup(core, "0788123450", at=app_settings)
    shop = AtPhone(client, SHOP)  # type: ignore[arg-type]
    for _ in range(2):
        await shop.dial()
        await shop.send("6")
        await shop.send("1")
        answer = await shop.send("1")
        await _tamper(sandbox, reference=topup.id, status="FAILED")  # it now says failed
    assert "Your distributor has it" in answer
    boss, note_screen = await _boss_case(client, "3")
    assert note_screen.startswith("CON Case ") and "type the note for Demo Shop 001" in note_screen
    assert (await boss.send("  ")).startswith("CON it needs a note")
    confirm = await boss.send("Operator statement shows the credit")
    assert "Close case " in confirm
    done = await boss.send(DEMO_PIN)
    assert done.startswith("END Case ") and done.endswith(" closed.")
    assert any("is closed: Operator statement shows the credit" in t for t in await _texts(core))
    assert await _state(core, topup.id) == TopupState.DELIVERED  # no money moved


async def test_telegram_report_answered_and_the_distributor_refunds_with_buttons(
    telegram: Telegram, core: Core, app_settings: Settings, redis_url: str
) -> None:
    async with core.transaction() as session:
        shop = await parties.get_party(session, SHOP, country="KE")
        session.add(
            PartyIdentity(channel="telegram", external_id=str(SHOP_USER), party_id=shop.id or 0)
        )
    redis = aioredis.Redis.from_url(redis_url)
    code = await links.invite(
        core, redis, actor=Actor.system(), party_ref=DISTRIBUTOR_MSISDN, ttl_s=600
    )
    await redis.aclose()
    await telegram.say(BOSS, f"/start {code.code}")

    answered = await _topup(core, "0788123450", at=app_settings)
    await telegram.say(SHOP_USER, "/start")
    await telegram.press(SHOP_USER, "Support")
    day = datetime.now(ZoneInfo(app_settings.timezone)).strftime("%d/%m")
    await telegram.press(SHOP_USER, f"0788123450 KES 50 {day}")
    await telegram.press(SHOP_USER, "Yes, open a case")
    assert telegram.screen(SHOP_USER).startswith("KES 50 to 0788123450 was delivered on ")
    assert await _state(core, answered.id) == TopupState.DELIVERED

    held = await _topup(core, "0788123460")
    await _escalated(core, held.id)
    await telegram.press(BOSS, "Support cases")
    listed = telegram.screen(BOSS)
    assert listed.startswith("Open support cases:")
    async with core.sessions() as session:
        case_id = (
            await session.execute(
                select(support.case_t.c.id).where(support.case_t.c.topup_id == held.id)
            )
        ).scalar_one()
    await telegram.press(BOSS, f"#{case_id} Demo Shop 001 KES 50 0h")
    await telegram.press(BOSS, "Refund")
    assert telegram.screen(BOSS).startswith(f"Refund KES 50 to Demo Shop 001 for case {case_id}?")
    await telegram.say(BOSS, DEMO_PIN)
    assert "KES 50 returned to Demo Shop 001" in telegram.screen(BOSS)
    assert await _state(core, held.id) == TopupState.FAILED
    assert all(m.text != DEMO_PIN for m in telegram.fake.chat(BOSS, include_user=True))
