"""The messages a delivery step owes: to the retailer, its customer and, on escalation, its
distributor. Each goes on the recipient's own route (Telegram when linked and on, else SMS).

They are written to the outbox in the transaction that makes the top-up final or escalated
(core/services/finish.py, delivery.py), so a message exists exactly when its cause does.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.catalog_snapshot import Catalog
from core.i18n import t
from core.models import Party, ProductKind, Role, TopupState
from core.money import format_minor
from core.msisdn import national
from core.services import identities
from core.services.delivery_rows import Job, OpenTopup
from core.services.notify import SMS, TELEGRAM, Message, route

party_t = Party.__table__  # type: ignore[attr-defined]
_shop_t = party_t.alias("shop")
# The retailer's distributor, told of an escalated top-up (its support queue).
_PARENT = (
    select(party_t.c.id, party_t.c.msisdn, party_t.c.language, identities.address_column(TELEGRAM))
    .join(_shop_t, _shop_t.c.parent_id == party_t.c.id)
    .where(_shop_t.c.id == bindparam("id"), party_t.c.role == Role.DISTRIBUTOR)
)


def owed(
    job: Job, state: TopupState, *, what: str, telegram_on: bool
) -> Callable[[int], list[Message]]:
    """The messages a final state owes, given the retailer's stock left."""
    topup, lang = job.topup, job.language
    fields = {
        "what": what,
        "number": national(topup.msisdn),
        "ref": topup.id,
    }
    to_retailer = retailer(job, f"{topup.id}:retailer", telegram_on=telegram_on)
    if state == TopupState.FAILED:
        return lambda _stock: [to_retailer(t(lang, "topup.failed", **fields))]

    def delivered(stock: int) -> list[Message]:
        left = format_minor(stock, topup.currency)
        return [
            to_retailer(t(lang, "topup.delivered", **fields, stock=left)),
            Message(
                key=f"{topup.id}:customer",
                via=SMS,
                recipient=topup.msisdn,
                text=t(lang, "topup.receipt", **fields, shop=job.shop_name),
            ),
        ]

    return delivered


def retailer(job: Job, key: str, *, telegram_on: bool) -> Callable[[str], Message]:
    """A message to the retailer on its own channel."""
    via, recipient = route(
        telegram_on=telegram_on,
        telegram_user_id=job.telegram_user_id,
        msisdn=job.shop_msisdn,
    )
    return lambda text: Message(
        key=key, party_id=job.topup.party_id, via=via, recipient=recipient, text=text
    )


def what(catalog: Catalog, topup: OpenTopup, language: str) -> str:
    """What was topped up, as the messages name it: "KES 50 airtime", "the 100MB 24h bundle
    (KES 20)"."""
    amount = format_minor(topup.amount_minor, topup.currency)
    products = catalog.products
    if topup.kind == ProductKind.AIRTIME or topup.product_code not in products:
        return t(language, "topup.what_airtime", amount=amount)
    name = products[topup.product_code].name
    return t(language, "topup.what_bundle", name=name, amount=amount)


async def to_distributor(
    session: AsyncSession, job: Job, fields: dict[str, object], *, telegram_on: bool
) -> list[Message]:
    """The escalation's message to the retailer's distributor (none if its parent is not one)."""
    parent = (await session.execute(_PARENT, {"id": job.topup.party_id})).first()
    if parent is None:
        return []
    parent_id, msisdn, language, telegram_user_id = parent
    via, recipient = route(
        telegram_on=telegram_on, telegram_user_id=telegram_user_id, msisdn=msisdn
    )
    return [
        Message(
            key=f"{job.topup.id}:escalated:parent",
            party_id=parent_id,
            via=via,
            recipient=recipient,
            text=t(language, "alert.case", **fields, name=job.shop_name[:24]),
        )
    ]
