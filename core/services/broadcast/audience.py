"""Who a broadcast goes to: the audience (all, low on an operator's stock, a tag or region), each
recipient's route (Telegram, else SMS), and the preview a distributor confirms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select

from core.context import Core
from core.models import Account, AccountKind, Party, PartyStatus, PartyTag, Role
from core.services import identities
from core.services.notify import TELEGRAM, route

party_t = Party.__table__  # type: ignore[attr-defined]
account_t = Account.__table__  # type: ignore[attr-defined]
tag_t = PartyTag.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a broadcast goes to: ``all`` the distributor's retailers, those ``low`` on an
    operator's stock (``value`` the operator code), or those with a ``tag`` or region."""

    kind: str
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Audience:
        kind, _, value = text.partition(":")
        if kind not in ("all", "low", "tag") or (kind != "all" and not value):
            raise ValueError(f"not an audience: {text!r}")
        return cls(kind, value.strip().lower() if kind == "tag" else value)

    def __str__(self) -> str:
        return self.kind if self.kind == "all" else f"{self.kind}:{self.value}"


@dataclass(frozen=True, slots=True)
class Preview:
    total: int
    telegram: int
    sms: int


def _audience_query(core: Core, distributor_id: int, audience: Audience) -> Select[Any]:
    query = select(party_t.c.id, party_t.c.msisdn, identities.address_column(TELEGRAM)).where(
        party_t.c.parent_id == distributor_id,
        party_t.c.role == Role.RETAILER,
        party_t.c.status == PartyStatus.ACTIVE,
    )
    if audience.kind == "low":
        threshold = func.coalesce(party_t.c.low_stock_minor, core.settings.low_stock_minor)
        low = (
            select(account_t.c.id)
            .where(
                account_t.c.party_id == party_t.c.id,
                account_t.c.kind == AccountKind.MAIN,
                account_t.c.asset == f"AIRTIME:{audience.value}",
                account_t.c.balance_minor < threshold,
            )
            .exists()
        )
        query = query.where(low)
    elif audience.kind == "tag":
        tagged = select(tag_t.c.party_id).where(
            tag_t.c.party_id == party_t.c.id, tag_t.c.tag == audience.value
        )
        query = query.where(or_(func.lower(party_t.c.region) == audience.value, tagged.exists()))
    return query.order_by(party_t.c.id)


async def recipients(core: Core, distributor_id: int, audience: Audience) -> list[dict[str, Any]]:
    telegram_on = bool(core.settings.telegram_token)
    async with core.sessions() as session:
        rows = (await session.execute(_audience_query(core, distributor_id, audience))).all()
    out = []
    for party_id, msisdn, telegram_address in rows:
        via, recipient = route(
            telegram_on=telegram_on, telegram_user_id=telegram_address, msisdn=msisdn
        )
        out.append({"party_id": party_id, "via": via, "recipient": recipient})
    return out


def preview_of(recipients: Sequence[dict[str, Any]]) -> Preview:
    telegram = sum(r["via"] == TELEGRAM for r in recipients)
    return Preview(len(recipients), telegram, len(recipients) - telegram)


async def preview(core: Core, *, distributor_id: int, audience: Audience) -> Preview:
    return preview_of(await recipients(core, distributor_id, audience))
