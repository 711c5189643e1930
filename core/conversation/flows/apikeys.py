"""A distributor's keys for the REST API (docs/API.md): the live ones by prefix, a new one, or one
revoked, each confirmed with the PIN.

Only on a channel whose screens can carry a file (Telegram): the new key is sent once, in a file
with the final screen, never in a screen's text (the engine keeps a final screen's text a while to
replay it to a retry; a file is sent and forgotten). AirGate keeps only its hash
(core/services/apikeys.py).
"""

from __future__ import annotations

from enum import StrEnum

from msgspec import field

from core.conversation.channel import Shows
from core.conversation.flow import MENU, Ctx, Reprompt, Step, T, Zero, end
from core.conversation.flows.common import check_pin
from core.conversation.sessions import Journey
from core.conversation.types import Document, Expects, Option, Screen
from core.models import ApiKey
from core.services import apikeys
from core.services.audit import Actor


class S(StrEnum):
    LIST = "apikeys.list"
    SCOPES = "apikeys.scopes"
    CREATE_PIN = "apikeys.create_pin"
    PICK = "apikeys.pick"
    REVOKE_PIN = "apikeys.revoke_pin"


TABLE: list[list[str]] = [
    # trigger  source  destination
    [T.API_KEYS, MENU, S.LIST],
    [T.CREATE, S.LIST, S.SCOPES],
    [T.REVOKE, S.LIST, S.PICK],
    [T.NEXT, S.SCOPES, S.CREATE_PIN],
    [T.NEXT, S.PICK, S.REVOKE_PIN],
]

# What a new key may do, as offered: the value is the scopes' text.
GRANTS = (
    ("read", "apikeys.grant_read"),
    ("read,topup", "apikeys.grant_topup"),
    ("manage,read,stock,topup", "apikeys.grant_all"),
)


class Keys(Journey, tag="ak"):
    scopes: str = field(default="", name="sc")  # the new key's, as apikeys.scopes_text writes
    prefix: str = field(default="", name="kp")  # the key to revoke


JOURNEYS: dict[str, type[Journey]] = {T.API_KEYS: Keys}


async def _live(ctx: Ctx) -> list[ApiKey]:
    actor = Actor.party(ctx.party_id, ctx.turn.channel)
    return await apikeys.list_keys(ctx.core, actor=actor, party_ref=ctx.party_id)


async def show_list(ctx: Ctx) -> Screen:
    keys = await _live(ctx)
    lines = "\n".join(f"{k.prefix}... {k.scopes}" for k in keys) or ctx.t("apikeys.none")
    options = [Option(ctx.t("apikeys.create"), T.CREATE)]
    if keys:
        options.append(Option(ctx.t("apikeys.revoke"), T.REVOKE))
    return Screen(ctx.t("apikeys.title", keys=lines), tuple(options))


async def choose(_ctx: Ctx, value: str) -> str:
    return value


async def show_scopes(ctx: Ctx) -> Screen:
    options = tuple(Option(ctx.t(label), value) for value, label in GRANTS)
    return Screen(ctx.t("apikeys.grant"), options)


async def take_scopes(ctx: Ctx, value: str) -> str:
    ctx.data(Keys).scopes = value
    return T.NEXT


async def show_create_pin(ctx: Ctx) -> Screen:
    return Screen(ctx.t("apikeys.create_confirm", scopes=ctx.data(Keys).scopes))


async def create(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    if not ctx.can(Shows.DOCUMENT):  # the menu offers it nowhere else; a key is never text
        return end(ctx.t("apikeys.not_here"))
    made = await apikeys.create(
        ctx.core,
        actor=Actor.party(ctx.party_id, ctx.turn.channel),
        party_ref=ctx.party_id,
        scopes=apikeys.parse_scopes(ctx.data(Keys).scopes),
        label=ctx.turn.channel,
    )
    document = Document(f"airgate-api-key-{made.row.prefix}.txt", f"{made.key}\n".encode())
    caption = ctx.t("apikeys.created", prefix=made.row.prefix, scopes=made.row.scopes)
    return Screen(caption, final=True, document=document)


async def show_pick(ctx: Ctx) -> Screen:
    keys = await _live(ctx)
    if not keys:
        return end(ctx.t("apikeys.none"))
    options = tuple(Option(f"{k.prefix}... {k.scopes}", k.prefix) for k in keys)
    return Screen(ctx.t("apikeys.pick"), options)


async def take_pick(ctx: Ctx, value: str) -> str:
    if value not in {k.prefix for k in await _live(ctx)}:
        raise Reprompt(key="apikeys.gone")
    ctx.data(Keys).prefix = value
    return T.NEXT


async def show_revoke_pin(ctx: Ctx) -> Screen:
    return Screen(ctx.t("apikeys.revoke_confirm", prefix=ctx.data(Keys).prefix))


async def revoke(ctx: Ctx, text: str) -> Screen:
    await check_pin(ctx, text)
    prefix = ctx.data(Keys).prefix
    await apikeys.revoke(ctx.core, actor=Actor.party(ctx.party_id, ctx.turn.channel), prefix=prefix)
    return end(ctx.t("apikeys.revoked", prefix=prefix))


STEPS: dict[str, Step] = {
    S.LIST: Step(show_list, choose, resumable=False),
    S.SCOPES: Step(show_scopes, take_scopes, resumable=False),
    S.CREATE_PIN: Step(show_create_pin, create, Expects.PIN, Zero.CANCEL, resumable=False),
    S.PICK: Step(show_pick, take_pick, resumable=False),
    S.REVOKE_PIN: Step(show_revoke_pin, revoke, Expects.PIN, Zero.CANCEL, resumable=False),
}
