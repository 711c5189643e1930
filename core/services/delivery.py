"""Delivering a confirmed top-up: send, then capture, release or find out.

Invariant: stock is captured only on the provider's word that the top-up was delivered, released
only on its word that it was not; anything else (a time-out, a 5xx, a crash) leaves the reservation
held and the top-up open, to be looked up by its reference. Every request to the provider carries
the top-up id as its reference, so a resend can never deliver twice.

One step (:func:`advance`) per job:

- a fresh top-up is sent; any other run first asks the provider what became of the reference
  (a crashed worker may have sent it) and sends only if the provider has no record of it;
- delivered → capture + notifications; failed or refused → release + notifications;
- pending, time-out → ``unknown``: status queries on the configured back-off;
- provider unavailable → the same reference again after a short back-off;
- still open after ``topup_unknown_window_s`` → ``escalated``: a support case, stock still held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.i18n import t
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.models import (
    AccountKind,
    Notification,
    Operator,
    Party,
    Product,
    ProductKind,
    SupportCase,
    Topup,
    TopupState,
)
from core.models.topup import OPEN_STATES
from core.models.types import utcnow
from core.money import airtime_asset, format_minor
from core.msisdn import masked, national
from core.providers.port import AirtimeProvider, ProviderStatus, ProviderTransaction, TopupOrder
from core.services.ledger import account_balances
from core.services.notify import Notifier, Owed, add_owed, to_rows

log = get_logger(__name__)
topup_t = Topup.__table__  # type: ignore[attr-defined]

TRANSIENT_BACKOFF_MAX_S = 60  # 1, 2, 4 … 60 s between resends while the provider is unavailable


@dataclass
class Delivery:
    """What a worker process needs to advance top-ups; built once at start-up."""

    core: Core
    provider: AirtimeProvider
    notifier: Notifier
    queue: JobQueue
    _operators: dict[str, Operator] = field(default_factory=dict)

    async def operator(self, session: AsyncSession, code: str) -> Operator:
        if code not in self._operators:
            operator = await session.get(Operator, code)
            if operator is None:
                raise LookupError(code)
            self._operators[code] = operator
        return self._operators[code]


async def advance(d: Delivery, topup_id: str, *, sends: int, checks: int, fresh: bool) -> str:
    """Take one step for a top-up; returns its state afterwards. Safe to run twice."""
    async with d.core.sessions() as session:
        topup = await session.get(Topup, topup_id)
        if topup is None:
            raise LookupError(topup_id)
        operator = await d.operator(session, topup.operator_code)
    if topup.state not in OPEN_STATES or (topup.sends, topup.checks) != (sends, checks):
        return topup.state  # finished, escalated, or this job was overtaken by a later one
    now = utcnow()
    txn: ProviderTransaction | None = None
    if not fresh:
        try:
            txn = await d.provider.find(reference=topup.id, since=topup.created_at)
        except ProviderUnavailable as exc:
            return await _later(d, topup, now, detail=str(exc), looked=True)
    if txn is None:
        sent = await _send(d, topup, operator, now)
        if isinstance(sent, str):
            return sent
        txn = sent
    if txn.status == ProviderStatus.DELIVERED:
        return await _finish(d, topup, TopupState.DELIVERED, txn=txn)
    if txn.status == ProviderStatus.FAILED:
        return await _finish(d, topup, TopupState.FAILED, txn=txn, detail=txn.message)
    return await _unknown(d, topup, now, detail="pending at the provider", txn=txn)


async def _send(
    d: Delivery, topup: Topup, operator: Operator, now: datetime
) -> ProviderTransaction | str:
    """The provider's transaction, or the state the top-up was left in when there is none."""
    order = _order(topup, operator, d.core.settings.country)
    topup.sends += 1
    try:
        return await d.provider.send_topup(order)
    except ProviderRejected as exc:
        log.info("topup.rejected", topup_id=topup.id, code=exc.fields.get("error_code"))
        return await _finish(d, topup, TopupState.FAILED, detail=str(exc))
    except OutcomeUnknown as exc:
        return await _unknown(d, topup, now, detail=str(exc))
    except ProviderUnavailable as exc:
        return await _later(d, topup, now, detail=str(exc), looked=False)


def _order(topup: Topup, operator: Operator, country: str) -> TopupOrder:
    bundle = topup.kind != ProductKind.AIRTIME
    operator_id = operator.provider_bundle_operator_id if bundle else operator.provider_operator_id
    if operator_id is None:
        raise LookupError(f"operator {operator.code} has no provider operator id")
    return TopupOrder(
        reference=topup.id,
        msisdn=topup.msisdn,
        country=operator.country or country,
        operator_id=operator_id,
        amount_minor=topup.amount_minor,
        currency=topup.currency,
    )


async def _finish(
    d: Delivery,
    topup: Topup,
    state: TopupState,
    *,
    txn: ProviderTransaction | None = None,
    detail: str | None = None,
) -> str:
    """Final state, ledger resolution and owed notifications in one transaction; then notify."""
    async with d.core.transaction() as session:
        done = (
            await session.execute(
                update(topup_t)
                .where(topup_t.c.id == topup.id, topup_t.c.state.in_(OPEN_STATES))
                .values(
                    state=state,
                    final_at=utcnow(),
                    sends=topup.sends,
                    checks=topup.checks,
                    provider_txn_id=txn.transaction_id if txn else None,
                    operator_txn_id=txn.operator_transaction_id if txn else None,
                    detail=(detail or None) and detail[:200],
                )
                .returning(topup_t.c.id)
            )
        ).first()
        if done is None:
            return state  # another run finished it first: the provider gave it the same answer
        if state == TopupState.DELIVERED:
            await d.core.ledger.capture(session, reservation_id=topup.id)
        else:
            await d.core.ledger.release(session, reservation_id=topup.id)
        ids = await add_owed(session, await _owed(d, session, topup, state))
    log.info("topup.final", topup_id=topup.id, state=state, msisdn=masked(topup.msisdn))
    await d.notifier.send(ids)
    return state


async def _owed(
    d: Delivery, session: AsyncSession, topup: Topup, state: TopupState
) -> list[Notification]:
    party = await session.get(Party, topup.party_id)
    assert party is not None  # a foreign key
    lang = party.language
    product = await _product_word(session, topup, lang)
    fields = {
        "amount": format_minor(topup.amount_minor, topup.currency),
        "product": product,
        "number": national(topup.msisdn),
        "ref": topup.id,
    }
    if state == TopupState.FAILED:
        text = t(lang, "topup.failed", **fields)
        owed = [Owed(key=f"{topup.id}:retailer", text=text, party=party)]
        return to_rows(owed, telegram_on=d.notifier.telegram_on)
    balances = await account_balances(session, party.id or 0)
    stock = balances.get((airtime_asset(topup.operator_code), AccountKind.MAIN), 0)
    owed = [
        Owed(
            key=f"{topup.id}:retailer",
            text=t(lang, "topup.delivered", **fields, stock=format_minor(stock, topup.currency)),
            party=party,
        ),
        Owed(
            key=f"{topup.id}:customer",
            text=t(lang, "topup.receipt", **fields, shop=party.name),
            msisdn=topup.msisdn,
        ),
    ]
    return to_rows(owed, telegram_on=d.notifier.telegram_on)


async def _product_word(session: AsyncSession, topup: Topup, language: str) -> str:
    if topup.kind == ProductKind.AIRTIME:
        return t(language, "topup.airtime")
    product = await session.get(Product, topup.product_code)
    return product.name if product is not None else topup.product_code


async def _unknown(
    d: Delivery, topup: Topup, now: datetime, *, detail: str, txn: ProviderTransaction | None = None
) -> str:
    """Not known yet: query its status after the next gap of the back-off schedule."""
    since = topup.unknown_since or now
    window = timedelta(seconds=d.core.settings.topup_unknown_window_s)
    if now - since >= window:
        return await _escalate(d, topup, detail=detail)
    gaps = d.core.settings.topup_status_backoff_s
    delay_s = gaps[min(topup.checks, len(gaps) - 1)]
    topup.checks += 1
    log.info("topup.unknown", topup_id=topup.id, detail=detail, next_check_s=delay_s)
    return await _schedule(
        d,
        topup,
        delay_s=delay_s,
        state=TopupState.UNKNOWN,
        unknown_since=since,
        detail=detail,
        provider_txn_id=txn.transaction_id if txn else topup.provider_txn_id,
    )


async def _later(d: Delivery, topup: Topup, now: datetime, *, detail: str, looked: bool) -> str:
    """The provider could not be reached: the same step again after a short back-off."""
    if now - topup.created_at >= timedelta(seconds=d.core.settings.topup_unknown_window_s):
        return await _escalate(d, topup, detail=detail)
    if looked:
        topup.checks += 1
    delay_s = min(2 ** min(topup.sends + topup.checks, 6), TRANSIENT_BACKOFF_MAX_S)
    log.info("topup.provider_unavailable", topup_id=topup.id, detail=detail, retry_s=delay_s)
    return await _schedule(d, topup, delay_s=delay_s, state=TopupState(topup.state), detail=detail)


async def _schedule(
    d: Delivery, topup: Topup, *, delay_s: float, state: TopupState, **values: object
) -> str:
    """Record the next step (conditional on nobody else having moved the row), then enqueue it."""
    async with d.core.transaction() as session:
        moved = (
            await session.execute(
                update(topup_t)
                .where(topup_t.c.id == topup.id, topup_t.c.state.in_(OPEN_STATES))
                .values(
                    state=state,
                    sends=topup.sends,
                    checks=topup.checks,
                    due_at=utcnow() + timedelta(seconds=delay_s),
                    **values,
                )
                .returning(topup_t.c.id)
            )
        ).first()
    if moved is None:
        return TopupState.DELIVERED  # finished by a concurrent run; nothing left to schedule
    await d.queue.deliver(
        topup.id, sends=topup.sends, checks=topup.checks, fresh=False, defer_s=delay_s
    )
    return state


async def _escalate(d: Delivery, topup: Topup, *, detail: str) -> str:
    """Unresolved past the window: a support case; the stock stays held until it is resolved."""
    async with d.core.transaction() as session:
        moved = (
            await session.execute(
                update(topup_t)
                .where(topup_t.c.id == topup.id, topup_t.c.state.in_(OPEN_STATES))
                .values(
                    state=TopupState.ESCALATED,
                    sends=topup.sends,
                    checks=topup.checks,
                    detail=detail[:200],
                )
                .returning(topup_t.c.id)
            )
        ).first()
        if moved is None:
            return TopupState.ESCALATED
        case = SupportCase(topup_id=topup.id, party_id=topup.party_id, reason="unknown_outcome")
        session.add(case)
        await session.flush()
        party = await session.get(Party, topup.party_id)
        assert party is not None
        text = t(
            party.language,
            "topup.escalated",
            amount=format_minor(topup.amount_minor, topup.currency),
            number=national(topup.msisdn),
            case=case.id,
            ref=topup.id,
        )
        owed = [Owed(key=f"{topup.id}:escalated", text=text, party=party)]
        ids = await add_owed(session, to_rows(owed, telegram_on=d.notifier.telegram_on))
    log.warning("topup.escalated", topup_id=topup.id, case=case.id, detail=detail)
    await d.notifier.send(ids)
    return TopupState.ESCALATED
