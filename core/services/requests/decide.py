"""Deciding a stock request, at most once (a conditional UPDATE on ``state = 'pending'``):
approving runs that UPDATE and the sale (keyed ``req:{id}``) in one transaction, so a concurrent
decision waits on the row and finds it decided; a sale refused at approval time rolls back and
the request is marked ``failed`` with the reason; refusing moves nothing. The buyer is told."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import (
    InsufficientFunds,
    InsufficientStock,
    NotFound,
    NotPermitted,
    PartyInactive,
    Refused,
)
from core.jobs.queue import JobQueue
from core.models import RequestState, StockRequest
from core.models.types import utcnow
from core.services import stock
from core.services.audit import Actor, record
from core.services.notify import Message
from core.services.requests.messages import enqueue, tell_buyer, why_key

request_t = StockRequest.__table__  # type: ignore[attr-defined]

NOTE_CHARS = 200  # the column's width
# What a sale refused at approval time means: the request fails (a bug or a permission problem
# is not among them: those propagate and leave the request pending).
SALE_REFUSED = (InsufficientFunds, InsufficientStock, PartyInactive, NotPermitted)


class _Lost(Exception):
    """Another turn decided the request while this one waited for its row: roll back."""


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
        async with core.money(payer=seller_id) as session:
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
            owed = await tell_buyer(
                core, session, decided, "requests.approved_sms", receipt=receipt
            )
    except _Lost:
        return Decision(request=await _get(core, request_id), decided_now=False)
    except SALE_REFUSED as exc:
        return await _fail(core, request_id=request_id, actor=actor, exc=exc, queue=queue)
    await enqueue(queue, owed)
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
        why=why_key(exc),
    )
    return replace(decision, why=why_key(exc)) if decision.decided_now else decision


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
            owed = await tell_buyer(core, session, decided, f"requests.{state}_sms", why=why)
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
    await enqueue(queue, owed)
    return Decision(request=decided, decided_now=True)
