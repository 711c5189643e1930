"""What each change of a stock request owes: a message to the seller when a request is made, to
the buyer when it is decided, written to the notification outbox in the deciding transaction and
enqueued after the commit (the sweeper sends any whose job was lost)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import InsufficientFunds, InsufficientStock, Refused
from core.i18n import t
from core.jobs.queue import JobQueue
from core.models import Party, StockRequest
from core.money import format_minor
from core.services import identities, stock
from core.services.catalog import get_operator
from core.services.notify import TELEGRAM, Message, add_owed, route
from core.services.parties import get_party


def why_key(exc: Refused) -> str:
    """The catalogue key of a failed sale's reason, for the buyer."""
    if isinstance(exc, InsufficientFunds):
        return "requests.why_funds"
    if isinstance(exc, InsufficientStock):
        return "requests.why_stock"
    return "requests.why_other"


async def tell_buyer(
    core: Core,
    session: AsyncSession,
    request: StockRequest,
    key: str,
    *,
    receipt: stock.Receipt | None = None,
    why: str | None = None,
) -> list[Message]:
    buyer = await get_party(session, request.buyer_id, country=core.settings.country)
    operator = await get_operator(session, request.operator_code)

    def amount(minor: int) -> str:
        return format_minor(minor, operator.currency)

    fields: dict[str, object] = {
        "request": request.id,
        "amount": amount(request.face_minor),
        "operator": operator.name,
    }
    if receipt is not None:
        fields |= {
            "price": amount(receipt.price_minor),
            "cash": amount(receipt.cash_minor),
            "credit": amount(receipt.credit_minor),
        }
    if why is not None:
        fields["why"] = t(buyer.language, why)
    message = await message_to(core, session, buyer, f"req:{request.id}:decided", key, fields)
    return await add_owed(session, [message])


async def message_to(
    core: Core,
    session: AsyncSession,
    party: Party,
    key: str,
    text_key: str,
    fields: Mapping[str, object],
) -> Message:
    via, recipient = route(
        telegram_on=bool(core.settings.telegram_token),
        telegram_user_id=await identities.address(
            session, party_id=party.id or 0, channel=TELEGRAM
        ),
        msisdn=party.msisdn,
    )
    return Message(
        key=key,
        party_id=party.id,
        via=via,
        recipient=recipient,
        text=t(party.language, text_key, **fields),
    )


async def enqueue(queue: JobQueue | None, owed: Sequence[Message]) -> None:
    """After the commit; without a queue (or with Redis away) the sweeper sends them later."""
    if queue is None:
        return
    for message in owed:
        await queue.notify(message.id or 0, attempts=0)
