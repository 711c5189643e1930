"""An aggregator account's key and secret (AIRGATE_PROVIDERS) never leave their place: not in a
log line at DEBUG (console or JSON) while top-ups are routed, fail over and open a breaker, not
in any Redis key or value routing and the float poll write, not in a row of the top-ups."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from core.logging import configure, secrets_of
from core.models import Topup
from core.routing.health import Health
from core.routing.router import Router
from core.services import floats
from tests.lifecycle.conftest import SANDBOX
from tests.routing.conftest import Routed

KEY, SECRET = "acct-Key-Qw72Lp", "acct-Secret-Zx81Mn"


@pytest.fixture
def sandboxes() -> dict[str, object]:
    alpha = dataclasses.replace(SANDBOX, client_id=KEY, client_secret=SECRET)
    return {"alpha": alpha, "beta": SANDBOX}


@pytest.fixture
def account_extra() -> dict[str, dict[str, object]]:
    return {"alpha": {"key": KEY, "secret": SECRET}}


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
async def test_an_accounts_key_and_secret_appear_nowhere(
    routed: Routed, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    configure(level="DEBUG", json=as_json, secrets=secrets_of(routed.rig.settings))
    first = await routed.final(await routed.top_up())
    assert first.provider == "alpha"  # alpha took the key and secret, and answered
    await routed.stop("alpha")
    for _ in range(6):  # not sent at alpha, its breaker opens, beta takes them
        await routed.final(await routed.top_up())
    settings, redis = routed.rig.settings, routed.rig.queue.redis
    router = Router.from_settings(settings, health=Health.from_settings(settings, redis))
    try:  # alpha's float unreadable now (its error kept), beta's read
        accounts = list(router.accounts.values())
        await floats.poll(routed.core, redis=redis, accounts=accounts, outbox=_none)
    finally:
        await router.close()
    logs = capsys.readouterr()
    shown = logs.out + logs.err
    assert "routing.breaker_open" in shown  # the lines that could have held them were written
    redis = routed.rig.queue.redis
    dump = []
    for key in await redis.keys("*"):
        kind = (await redis.type(key)).decode()
        value = (
            await redis.hgetall(key) if kind == "hash"
            else await redis.smembers(key) if kind == "set"
            else await redis.get(key) if kind == "string"
            else kind
        )  # fmt: skip
        dump.append(f"{key!r} {value!r}")
    async with routed.core.sessions() as session:
        rows = [repr(t.model_dump()) for t in (await session.execute(select(Topup))).scalars()]
    for text in (shown, "\n".join(dump), "\n".join(rows), repr(routed.rig.settings)):
        assert KEY not in text and SECRET not in text


async def _none(_messages: object) -> None:
    return None
