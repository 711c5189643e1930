"""Linking a Telegram account to a party: one-time invite codes, or the party's phone plus PIN.

Invariant: a Telegram account acts for at most one party (core/services/identities.py) and only
after proof: a code the party's distributor (or an admin) made for it, used once and within its
lifetime, or the party's own phone number shared from that Telegram account together with the
party's PIN (checked and counted like any PIN try). Codes live in Redis with their TTL and are
taken with GETDEL, so two redemptions of one code cannot both succeed; a redemption that does not
link puts the code back for the rest of its lifetime.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from core.context import Core
from core.errors import NotFound
from core.models import Party
from core.redis import Client
from core.redis_pipeline import Lua
from core.services import identities
from core.services.audit import Actor, record
from core.services.parties import ensure_active, get_party, may_manage

INVITE_PREFIX = "airgate:tg:invite:"
TELEGRAM = "telegram"

# KEYS: the code's key. Returns its time left (ms) and its party, and takes it: one step, as
# MULTI was (a cluster client has no MULTI).
_TAKE = Lua("""
local left = redis.call('PTTL', KEYS[1])
return {left, redis.call('GETDEL', KEYS[1])}
""")


@dataclass(frozen=True, slots=True)
class Invite:
    code: str  # goes in t.me/<bot>?start=CODE: 1-64 of A-Za-z0-9_-
    party: Party
    ttl_s: int


async def invite(
    core: Core, redis: Client, *, actor: Actor, party_ref: str | int, ttl_s: int
) -> Invite:
    async with core.transaction() as session:
        party = await get_party(session, party_ref, country=core.settings.country)
        if actor.party_id != party.id:
            await may_manage(session, actor, party)
        ensure_active(party)
        code = secrets.token_urlsafe(12)  # 96 bits, 16 characters
        await redis.set(INVITE_PREFIX + code, str(party.id), ex=ttl_s)
        await record(
            session,
            actor=actor,
            action="telegram.invite",
            subject_party_id=party.id,
            details={"ttl_s": ttl_s},
        )
    return Invite(code=code, party=party, ttl_s=ttl_s)


async def redeem(core: Core, redis: Client, *, code: str, telegram_user_id: int) -> Party:
    """Link the party a code was made for; NotFound for a code unknown, used or expired."""
    if not (1 <= len(code) <= 64 and code.replace("-", "").replace("_", "").isalnum()):
        raise NotFound(kind="invite", key=code[:16])
    key = INVITE_PREFIX + code
    left_ms, party_id = await _TAKE(redis, [key], [])
    if party_id is None:
        raise NotFound(kind="invite", key=code[:16])
    try:
        return await link(
            core, party_id=int(party_id), telegram_user_id=telegram_user_id, how="code"
        )
    except BaseException:
        # Not linked (this account acts for another party, the party was suspended, the
        # database was away): the code stays good for the rest of its life.
        if left_ms > 0:
            await redis.set(key, party_id, px=left_ms, nx=True)
        raise


async def unblocked(core: Core, *, telegram_user_id: int) -> None:
    """The user (re)started the bot: messages may go to Telegram again (core/services/notify.py
    routes by SMS while the identity is blocked). A wrapper of :func:`identities.unblocked`."""
    await identities.unblocked(core, channel=TELEGRAM, external_id=str(telegram_user_id))


async def link(core: Core, *, party_id: int, telegram_user_id: int, how: str) -> Party:
    """Make ``telegram_user_id`` act for ``party_id`` (replacing the party's earlier account).
    AlreadyExists when that Telegram account already acts for another party. A wrapper of
    :func:`identities.link` kept while the Telegram adapter still calls it."""
    await identities.link(
        core, party_id=party_id, channel=TELEGRAM, external_id=str(telegram_user_id), how=how
    )
    async with core.sessions() as session:
        return await get_party(session, party_id, country=core.settings.country)
