"""Asking: a buyer asks its seller for stock it would pay partly on credit (the same request still
pending is returned, not made twice); a seller lists the requests awaiting its decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import InsufficientFunds, InvalidAmount, NotPermitted
from core.jobs.queue import JobQueue
from core.models import Operator, Party, RequestState, StockRequest
from core.money import format_minor
from core.services import stock
from core.services.audit import Actor, record
from core.services.catalog import get_operator
from core.services.notify import Message, add_owed
from core.services.parties import ensure_active, get_party
from core.services.requests.messages import enqueue, message_to

request_t = StockRequest.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Created:
    request: StockRequest
    seller: Party
    replayed: bool  # the same request was already pending: that one is returned


@dataclass(frozen=True, slots=True)
class Pending:
    """A request awaiting a seller's decision, with who asked."""

    id: int
    buyer_id: int
    buyer_name: str
    buyer_msisdn: str
    operator_code: str
    face_minor: int
    created_at: datetime


async def create(
    core: Core,
    *,
    buyer_id: int,
    operator_code: str,
    face_minor: int,
    actor: Actor,
    queue: JobQueue | None = None,
) -> Created:
    """Ask the buyer's seller for ``face_minor`` of an operator's stock. The same request still
    pending (same buyer, operator and amount) is returned rather than made twice."""
    if face_minor <= 0:
        raise InvalidAmount(reason="the amount must be more than zero")
    quote = await _payable_quote(core, buyer_id, operator_code, face_minor)
    async with core.transaction() as session:
        buyer, seller = await _buyer_and_seller(core, session, buyer_id, actor)
        operator = await get_operator(session, operator_code)
        existing = await _same_pending(session, buyer, seller, operator_code, face_minor)
        if existing is not None:  # the buyer's lock orders us after whoever made it
            return Created(request=existing, seller=seller, replayed=True)
        request = StockRequest(
            buyer_id=buyer.id or 0,
            seller_id=seller.id or 0,
            operator_code=operator_code,
            face_minor=face_minor,
        )
        session.add(request)
        await session.flush()
        await record(
            session,
            actor=actor,
            action="stock.request",
            subject_party_id=buyer.id,
            reference=f"req:{request.id}",
            details={
                "operator": operator_code,
                "face_minor": face_minor,
                "price_minor": quote.price_minor,
                "credit_minor": quote.credit_minor,
            },
        )
        owed = await add_owed(
            session, [await _tell_seller(core, session, request, buyer, seller, operator, quote)]
        )
    await enqueue(queue, owed)
    return Created(request=request, seller=seller, replayed=False)


async def _payable_quote(
    core: Core, buyer_id: int, operator_code: str, face_minor: int
) -> stock.Quote:
    """The price now; refused if it is beyond the buyer's cash plus available credit."""
    quote = await stock.quote(
        core, buyer_id=buyer_id, operator_code=operator_code, face_minor=face_minor
    )
    if quote.price_minor > quote.payable_minor:
        raise InsufficientFunds(
            party=f"#{buyer_id}",
            available_minor=quote.payable_minor,
            needed_minor=quote.price_minor,
            currency=quote.currency,
        )
    return quote


async def _buyer_and_seller(
    core: Core, session: AsyncSession, buyer_id: int, actor: Actor
) -> tuple[Party, Party]:
    """The buyer (its row locked: requests of one buyer queue here) and its seller, both active,
    if ``actor`` may ask for the buyer."""
    buyer = await get_party(session, buyer_id, country=core.settings.country, lock=True)
    if not actor.is_admin and actor.party_id != buyer.id:
        raise NotPermitted(reason=f"only {buyer.label} or an admin can ask for its stock")
    if buyer.parent_id is None:
        raise NotPermitted(reason=f"{buyer.label} has no seller")
    seller = await get_party(session, buyer.parent_id, country=core.settings.country)
    ensure_active(buyer)
    ensure_active(seller)
    return buyer, seller


async def _same_pending(
    session: AsyncSession, buyer: Party, seller: Party, operator_code: str, face_minor: int
) -> StockRequest | None:
    same = (
        select(StockRequest)
        .where(
            request_t.c.buyer_id == buyer.id,
            request_t.c.seller_id == seller.id,
            request_t.c.operator_code == operator_code,
            request_t.c.face_minor == face_minor,
            request_t.c.state == RequestState.PENDING,
        )
        .limit(1)
    )
    found: StockRequest | None = (await session.execute(same)).scalar()
    return found


async def _tell_seller(
    core: Core,
    session: AsyncSession,
    request: StockRequest,
    buyer: Party,
    seller: Party,
    operator: Operator,
    quote: stock.Quote,
) -> Message:
    fields = {
        "request": request.id,
        "name": buyer.name[:24],
        "amount": format_minor(request.face_minor, operator.currency),
        "operator": operator.name,
        "credit": format_minor(quote.credit_minor, operator.currency),
    }
    return await message_to(
        core, session, seller, f"req:{request.id}:new", "requests.new_sms", fields
    )


async def pending_for(core: Core, *, seller_id: int, limit: int = 100) -> list[Pending]:
    """The seller's requests awaiting a decision, oldest first."""
    query = (
        select(
            request_t.c.id,
            request_t.c.buyer_id,
            party_t.c.name,
            party_t.c.msisdn,
            request_t.c.operator_code,
            request_t.c.face_minor,
            request_t.c.created_at,
        )
        .join(party_t, party_t.c.id == request_t.c.buyer_id)
        .where(request_t.c.seller_id == seller_id, request_t.c.state == RequestState.PENDING)
        .order_by(request_t.c.created_at, request_t.c.id)
        .limit(limit)
    )
    async with core.sessions() as session:
        rows = (await session.execute(query)).all()
    return [Pending(*row) for row in rows]
