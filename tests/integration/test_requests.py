"""Stock requests on real databases: made, listed, approved (one sale, however many approvals),
refused, failed when the credit went meanwhile; only the buyer's own seller decides; each step
owes its message in the outbox."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from core.context import Core
from core.errors import InsufficientFunds, NotPermitted
from core.models import AuditEvent, Notification, Party, RequestState, StockRequest
from core.services import requests, stock
from core.services.audit import Actor
from tests.helpers import ADMIN, SAFARICOM, assert_ledger_ok, chain, give_distributor_stock

LIMIT, CASH, FACE = 500_000, 100_000, 300_000  # no discount: the price is the face value


async def _setup(core: Core) -> tuple[Party, Party]:
    """A distributor with stock; its retailer with CASH in cash and LIMIT of credit."""
    distributor, [shop] = await chain(core)
    await give_distributor_stock(core, distributor, 1_000_000, "d1")
    await stock.set_credit_limit(
        core,
        actor=ADMIN,
        seller_ref=distributor.msisdn,
        buyer_ref=shop.msisdn,
        limit_minor=LIMIT,
    )
    await stock.deposit(
        core,
        actor=ADMIN,
        receiver_ref=distributor.msisdn,
        payer_ref=shop.msisdn,
        amount_minor=CASH,
        reference="cash-1",
    )
    return distributor, shop


async def _ask(core: Core, shop: Party, face: int = FACE) -> StockRequest:
    made = await requests.create(
        core,
        buyer_id=shop.id or 0,
        operator_code=SAFARICOM,
        face_minor=face,
        actor=Actor.party(shop.id or 0, "ussd"),
    )
    return made.request


def _by(party: Party) -> Actor:
    return Actor.party(party.id or 0, "ussd")


async def _notes(core: Core) -> dict[str, Notification]:
    async with core.sessions() as session:
        rows = (await session.execute(select(Notification))).scalars()
        return {n.key: n for n in rows}


async def _actions(core: Core) -> list[str]:
    async with core.sessions() as session:
        return list((await session.execute(select(AuditEvent.action))).scalars())


async def _stock_of(core: Core, party: Party) -> int:
    return (
        (await stock.balance(core, ref=party.id or 0)).stock.get(SAFARICOM, {}).get("available", 0)
    )


async def test_a_request_is_listed_approved_once_and_each_side_told(core: Core) -> None:
    distributor, shop = await _setup(core)
    request = await _ask(core, shop)
    assert request.state == RequestState.PENDING and request.seller_id == distributor.id
    [pending] = await requests.pending_for(core, seller_id=distributor.id or 0)
    assert (pending.id, pending.buyer_name, pending.face_minor) == (request.id, "Shop 1", FACE)
    told = (await _notes(core))[f"req:{request.id}:new"]
    assert told.party_id == distributor.id and told.via == "sms"
    assert told.recipient == distributor.msisdn
    assert (
        f"Shop 1 asks for KES 3,000 Safaricom stock, KES 2,000 on credit. Request {request.id}"
        in (told.text)
    )

    decision = await requests.approve(
        core, request_id=request.id or 0, seller_id=distributor.id or 0, actor=_by(distributor)
    )
    assert decision.decided_now and decision.state == RequestState.APPROVED
    assert decision.receipt is not None
    assert (decision.receipt.cash_minor, decision.receipt.credit_minor) == (CASH, FACE - CASH)
    key = f"req:{request.id}"  # the sale's idempotency key; its reference is short
    assert decision.receipt.reference == stock.sale_reference(distributor.id or 0, key)
    assert decision.request.decided_at is not None
    assert await _stock_of(core, shop) == FACE
    assert await requests.pending_for(core, seller_id=distributor.id or 0) == []
    buyer_note = (await _notes(core))[f"req:{request.id}:decided"]
    assert buyer_note.party_id == shop.id
    assert buyer_note.text.startswith(f"AirGate: request {request.id} approved. You got KES 3,000")

    again = await requests.approve(
        core, request_id=request.id or 0, seller_id=distributor.id or 0, actor=_by(distributor)
    )
    assert not again.decided_now and again.state == RequestState.APPROVED
    assert await _stock_of(core, shop) == FACE  # sold once
    actions = await _actions(core)
    assert actions.count("stock.request") == 1 and actions.count("stock.request.approve") == 1
    await assert_ledger_ok(core)


async def test_refused_moves_nothing_and_stays_refused(core: Core) -> None:
    distributor, shop = await _setup(core)
    request = await _ask(core, shop)
    decision = await requests.refuse(
        core,
        request_id=request.id or 0,
        seller_id=distributor.id or 0,
        note="  pay  the last one first ",
        actor=_by(distributor),
    )
    assert decision.decided_now and decision.state == RequestState.REFUSED
    assert decision.request.note == "pay the last one first"
    assert "was refused" in (await _notes(core))[f"req:{request.id}:decided"].text
    late = await requests.approve(
        core, request_id=request.id or 0, seller_id=distributor.id or 0, actor=_by(distributor)
    )
    assert not late.decided_now and late.state == RequestState.REFUSED
    assert await _stock_of(core, shop) == 0
    assert "stock.request.refuse" in await _actions(core)
    await assert_ledger_ok(core)


async def test_credit_used_up_meanwhile_fails_the_request_with_the_reason(core: Core) -> None:
    distributor, shop = await _setup(core)
    request = await _ask(core, shop)
    # The distributor sells it other stock directly, spending its cash and most of its credit.
    await stock.sell(
        core,
        actor=_by(distributor),
        seller_ref=distributor.id or 0,
        buyer_ref=shop.id or 0,
        operator_code=SAFARICOM,
        face_minor=CASH + LIMIT - 50_000,
    )
    before = await _stock_of(core, shop)
    decision = await requests.approve(
        core, request_id=request.id or 0, seller_id=distributor.id or 0, actor=_by(distributor)
    )
    assert decision.decided_now and decision.state == RequestState.FAILED
    assert decision.why == "requests.why_funds" and decision.receipt is None
    assert "can pay KES 500" in (decision.request.note or "")
    assert await _stock_of(core, shop) == before
    text = (await _notes(core))[f"req:{request.id}:decided"].text
    assert "could not be completed: not enough cash and credit" in text
    assert "stock.request.fail" in await _actions(core)
    await assert_ledger_ok(core)


async def test_only_the_buyers_own_seller_decides(core: Core) -> None:
    distributor, shop = await _setup(core)
    other, [other_shop] = await chain(core, tag="12")
    request = await _ask(core, shop)
    request_id = request.id or 0
    with pytest.raises(NotPermitted):  # not addressed to it
        await requests.approve(
            core, request_id=request_id, seller_id=other.id or 0, actor=_by(other)
        )
    with pytest.raises(NotPermitted):  # naming the right seller does not make one it
        await requests.refuse(
            core, request_id=request_id, seller_id=distributor.id or 0, note=None, actor=_by(other)
        )
    with pytest.raises(NotPermitted):  # nor may the buyer approve its own
        await requests.approve(
            core, request_id=request_id, seller_id=distributor.id or 0, actor=_by(shop)
        )
    with pytest.raises(NotPermitted):  # nobody asks on another's behalf
        await requests.create(
            core,
            buyer_id=shop.id or 0,
            operator_code=SAFARICOM,
            face_minor=FACE,
            actor=_by(other_shop),
        )
    assert await requests.pending_for(core, seller_id=other.id or 0) == []
    [still] = await requests.pending_for(core, seller_id=distributor.id or 0)
    assert still.id == request_id


async def test_asking_again_returns_the_pending_request_and_too_much_is_refused(
    core: Core,
) -> None:
    distributor, shop = await _setup(core)
    first = await _ask(core, shop)
    again = await requests.create(
        core, buyer_id=shop.id or 0, operator_code=SAFARICOM, face_minor=FACE, actor=_by(shop)
    )
    assert again.replayed and again.request.id == first.id
    other = await _ask(core, shop, face=200_000)
    assert [p.id for p in await requests.pending_for(core, seller_id=distributor.id or 0)] == [
        first.id,
        other.id,
    ]
    with pytest.raises(InsufficientFunds):
        await _ask(core, shop, face=CASH + LIMIT + 1)


async def test_concurrent_decisions_sell_once(core: Core) -> None:
    """Two approvals at once (a double tap, two devices): one decides and sells, the other finds
    it decided. An approval racing a refusal: whichever wins, the stock matches the state."""
    distributor, shop = await _setup(core)
    seller_id, actor = distributor.id or 0, _by(distributor)
    request = await _ask(core, shop, face=100_000)

    decisions = await asyncio.gather(
        *(
            requests.approve(core, request_id=request.id or 0, seller_id=seller_id, actor=actor)
            for _ in range(2)
        )
    )
    assert sorted(d.decided_now for d in decisions) == [False, True]
    assert all(d.state == RequestState.APPROVED for d in decisions)
    assert await _stock_of(core, shop) == 100_000

    raced = await _ask(core, shop, face=50_000)
    approved, refused = await asyncio.gather(
        requests.approve(core, request_id=raced.id or 0, seller_id=seller_id, actor=actor),
        requests.refuse(
            core, request_id=raced.id or 0, seller_id=seller_id, note=None, actor=actor
        ),
    )
    assert approved.decided_now != refused.decided_now
    assert approved.state == refused.state
    sold = 50_000 if approved.state == RequestState.APPROVED else 0
    assert await _stock_of(core, shop) == 100_000 + sold
    assert len(await _notes(core)) == 4  # new and decided, for each request: once each
    await assert_ledger_ok(core)
