"""Every Lua script of AirGate that runs outside the job queue touches keys of one hash slot, as
its callers name them: a Redis Cluster runs a script on one node, and refuses (CROSSSLOT) one whose
keys hash to several slots. A script added without an entry here fails the first test; one whose
keys lack a shared hash tag ({...}) fails the second. The cluster itself runs them in
tests/integration/test_redis_cluster.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.crc import key_slot

import api.idempotency
import api.ratelimit
import core.conversation.sessions
import core.jobs.scripts
import core.ratelimit
import core.routing.floats
import core.routing.health
import core.services.links
from core.conversation.sessions import SessionStore
from core.redis_pipeline import Lua

REF_KEY = b"test-ref-key-0123456789abcdef0123"
# arq's scripts: the job queue stays on a plain or Sentinel-watched Redis (AIRGATE_QUEUE_REDIS_URL).
QUEUE_ONLY = {core.jobs.scripts._ENQUEUE, core.jobs.scripts._CLAIM}


def _session_keys() -> list[str]:
    store = SessionStore(None, ttl_s={}, ref_key=REF_KEY)  # type: ignore[arg-type]
    user = "+254712345678"
    return [store.session_key("ussd", "ATUid_1", user), store.resume_key("ussd", user)]


def _bot_keys() -> list[str]:
    limiter = core.ratelimit.Limiter(None, bot="123456", rate=29, chat_interval_s=1)  # type: ignore[arg-type]
    return limiter.keys(987654321)


health = core.routing.health
# Each script, and the keys one call of it is given, made by the code that calls it.
KEYS: dict[Lua, Callable[[], list[str]]] = {
    core.conversation.sessions._CAS: _session_keys,
    core.ratelimit._RESERVE: _bot_keys,
    core.ratelimit._PAUSE: lambda: _bot_keys()[:1],
    health._ADMIT: lambda: [health.key(a, "safaricom-ke") for a in ("alpha", "beta", "gamma")],
    health._RECORD: lambda: [health.key("alpha", "safaricom-ke"), health.INDEX],
    core.routing.floats._RECORD: lambda: [core.routing.floats.PREFIX + "alpha"],
    core.services.links._TAKE: lambda: [core.services.links.INVITE_PREFIX + "code"],
    api.ratelimit._TAKE: lambda: [f"{api.ratelimit.PREFIX}7"],
    api.idempotency._CLAIM: lambda: [api.idempotency.redis_key(7, "order-1")],
}


def test_every_script_outside_the_queue_has_its_keys_here() -> None:
    assert set(Lua.every) - QUEUE_ONLY == set(KEYS)


@pytest.mark.parametrize("script", list(KEYS), ids=lambda s: s.source.strip().split("\n")[0][:40])
def test_a_scripts_keys_share_one_slot(script: Lua) -> None:
    keys = KEYS[script]()
    assert len({key_slot(key.encode()) for key in keys}) == 1, keys


def test_without_a_hash_tag_two_keys_would_not() -> None:
    """The check can fail: the same keys with their tags' braces taken out spread."""
    keys = [key.replace("{", "").replace("}", "") for key in _session_keys()]
    assert len({key_slot(key.encode()) for key in keys}) == 2
