"""Stock requests: a retailer's purchase that needs its distributor's credit waits for the
distributor's decision.

Invariant: a request is decided at most once, by a conditional UPDATE on ``state = 'pending'``.
Approving runs that UPDATE and the sale (:func:`core.services.stock.sell`, keyed ``req:{id}``) in
one transaction: on PostgreSQL a concurrent approval or refusal waits on the request's row and then
finds it decided, on SQLite the write lock queues them; either way the stock moves once. A sale
refused at approval time (credit used up, stock gone) rolls back, and the request is marked
``failed`` with the reason instead.

Each change owes a message (to the seller when a request is made; to the buyer when it is decided),
written to the notification outbox in the same transaction and enqueued after the commit; the
sweeper sends any whose job was lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import (
    InsufficientFunds,
    InsufficientStock,
    InvalidAmount,
    NotFound,
    NotPermitted,
    PartyInactive,
    Refused,
)
from core.i18n import t
from core.jobs.queue import JobQueue
from core.models import Party, RequestState, StockRequest
from core.models.types import utcnow
from core.money import format_minor
from core.services import identities, stock
from core.services.audit import Actor, record
from core.services.catalog import get_operator
from core.services.notify import TELEGRAM, Message, add_owed, route
from core.services.parties import ensure_active, get_party

request_t = StockRequest.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]

NOTE_CHARS = 200  # the column's width
# What a sale refused at approval time means: the request fails (a bug or a permission problem
# is not among them: those propagate and leave the request pending).
SALE_REFUSED = (InsufficientFunds, InsufficientStock, PartyInactive, NotPermitted)


class _Lost(Exception):
    """Another turn decided the request while this one waited for its row: roll back."""


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


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of a request: ``decided_now`` is False when it had been decided before (the
    state is then that earlier decision, and nothing was done)."""

    request: StockRequest
    decided_now: bool
    receipt: stock.Receipt | None = None  # the sale, when approved now
    why: str | None = None  # when it failed now: the catalogue key of the reason

    @property
    def state(self) -> str:
        return self.request.state


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
    async with core.transaction() as session:
        buyer = await get_party(session, buyer_id, country=core.settings.country, lock=True)
        if not actor.is_admin and actor.party_id != buyer.id:
            raise NotPermitted(reason=f"only {buyer.label} or an admin can ask for its stock")
        if buyer.parent_id is None:
            raise NotPermitted(reason=f"{buyer.label} has no seller")
        seller = await get_party(session, buyer.parent_id, country=core.settings.country)
        ensure_active(buyer)
        ensure_active(seller)
        operator = await get_operator(session, operator_code)
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
        existing = (await session.execute(same)).scalar()
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
        fields = {
            "request": request.id,
            "name": buyer.name[:24],
            "amount": format_minor(face_minor, operator.currency),
            "operator": operator.name,
            "credit": format_minor(quote.credit_minor, operator.currency),
        }
        owed = await add_owed(
            session,
            [
                await _message(
                    core, session, seller, f"req:{request.id}:new", "requests.new_sms", fields
                )
            ],
        )
    await _enqueue(queue, owed)
    return Created(request=request, seller=seller, replayed=False)


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


async def approve(
    core: Core,
    *,
    request_id: int,
    seller_id: int,
    actor: Actor,
    queue: JobQueue | None = None,
) -> Decision:
    """Sell what the request asks for and mark it approved, in one transaction; or, when the sale
    is refused, mark it failed with the reason. Either way the buyer is told."""
    request = await _check(core, request_id=request_id, seller_id=seller_id, actor=actor)
    if request.state != RequestState.PENDING:
        return Decision(request=request, decided_now=False)
    try:
        async with core.transaction() as session:
            decided = await _decide(session, request_id, RequestState.APPROVED)
            if decided is None:  # decided by a concurrent turn while we waited for its row
                raise _Lost
            receipt = await stock.sell(
                core,
                actor=actor,
                seller_ref=decided.seller_id,
                buyer_ref=decided.buyer_id,
                operator_code=decided.operator_code,
                face_minor=decided.face_minor,
                key=f"req:{request_id}",
                within=session,
            )
            await record(
                session,
                actor=actor,
                action="stock.request.approve",
                subject_party_id=decided.buyer_id,
                reference=f"req:{request_id}",
                details={"price_minor": receipt.price_minor, "credit_minor": receipt.credit_minor},
            )
            owed = await _tell_buyer(
                core, session, decided, "requests.approved_sms", receipt=receipt
            )
    except _Lost:
        return Decision(request=await _get(core, request_id), decided_now=False)
    except SALE_REFUSED as exc:
        return await _fail(core, request_id=request_id, actor=actor, exc=exc, queue=queue)
    await _enqueue(queue, owed)
    return Decision(request=decided, decided_now=True, receipt=receipt)


async def refuse(
    core: Core,
    *,
    request_id: int,
    seller_id: int,
    note: str | None,
    actor: Actor,
    queue: JobQueue | None = None,
) -> Decision:
    """Refuse a pending request (nothing moves); the buyer is told."""
    request = await _check(core, request_id=request_id, seller_id=seller_id, actor=actor)
    if request.state != RequestState.PENDING:
        return Decision(request=request, decided_now=False)
    note = " ".join((note or "").split())[:NOTE_CHARS] or None
    return await _close(
        core,
        request_id=request_id,
        state=RequestState.REFUSED,
        note=note,
        actor=actor,
        details={"note": note} if note else {},
        queue=queue,
    )


# -- helpers ----------------------------------------------------------------------------------


async def _get(core: Core, request_id: int) -> StockRequest:
    async with core.sessions() as session:
        request = await session.get(StockRequest, request_id)
    if request is None:
        raise NotFound(kind="stock request", key=str(request_id))
    return request


async def _check(core: Core, *, request_id: int, seller_id: int, actor: Actor) -> StockRequest:
    """The request, if ``seller_id`` is its seller (the buyer's own) and ``actor`` may act so."""
    request = await _get(core, request_id)
    if request.seller_id != seller_id:
        raise NotPermitted(reason=f"request {request_id} is not addressed to #{seller_id}")
    if not actor.is_admin and actor.party_id != seller_id:
        raise NotPermitted(reason=f"only #{seller_id} or an admin can decide request {request_id}")
    return request


async def _decide(
    session: AsyncSession, request_id: int, state: RequestState, *, note: str | None = None
) -> StockRequest | None:
    """pending → ``state``, or None if it was no longer pending (someone decided first)."""
    stmt = (
        update(request_t)
        .where(request_t.c.id == request_id, request_t.c.state == RequestState.PENDING)
        .values(state=state, note=note, decided_at=utcnow())
        .returning(*request_t.c)
    )
    row = (await session.execute(stmt)).mappings().first()
    return StockRequest(**row) if row is not None else None


async def _fail(
    core: Core, *, request_id: int, actor: Actor, exc: Refused, queue: JobQueue | None
) -> Decision:
    note = str(exc)[:NOTE_CHARS]
    decision = await _close(
        core,
        request_id=request_id,
        state=RequestState.FAILED,
        note=note,
        actor=actor,
        details={"error": exc.code, "note": note},
        queue=queue,
        why=_why(exc),
    )
    return replace(decision, why=_why(exc)) if decision.decided_now else decision


async def _close(
    core: Core,
    *,
    request_id: int,
    state: RequestState,
    note: str | None,
    actor: Actor,
    details: dict[str, object],
    queue: JobQueue | None,
    why: str | None = None,
) -> Decision:
    """Decide a pending request without a sale (refused, or failed): recorded, the buyer told."""
    owed: list[Message] = []
    async with core.transaction() as session:
        decided = await _decide(session, request_id, state, note=note)
        if decided is not None:
            action = "refuse" if state == RequestState.REFUSED else "fail"
            await record(
                session,
                actor=actor,
                action=f"stock.request.{action}",
                subject_party_id=decided.buyer_id,
                reference=f"req:{request_id}",
                details=details,
            )
            owed = await _tell_buyer(core, session, decided, f"requests.{state}_sms", why=why)
    return await _after(core, queue, request_id, decided, owed)


async def _after(
    core: Core,
    queue: JobQueue | None,
    request_id: int,
    decided: StockRequest | None,
    owed: list[Message],
) -> Decision:
    """After the commit: send what the decision owes, or say who decided first."""
    if decided is None:
        return Decision(request=await _get(core, request_id), decided_now=False)
    await _enqueue(queue, owed)
    return Decision(request=decided, decided_now=True)


def _why(exc: Refused) -> str:
    """The catalogue key of a failed sale's reason, for the buyer."""
    if isinstance(exc, InsufficientFunds):
        return "requests.why_funds"
    if isinstance(exc, InsufficientStock):
        return "requests.why_stock"
    return "requests.why_other"


async def _tell_buyer(
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
    message = await _message(core, session, buyer, f"req:{request.id}:decided", key, fields)
    return await add_owed(session, [message])


async def _message(
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


async def _enqueue(queue: JobQueue | None, owed: Sequence[Message]) -> None:
    """After the commit; without a queue (or with Redis away) the sweeper sends them later."""
    if queue is None:
        return
    for message in owed:
        await queue.notify(message.id or 0, attempts=0)


__all__ = ["Created", "Decision", "Pending", "approve", "create", "pending_for", "refuse"]
