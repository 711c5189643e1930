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
- still open after ``topup_unknown_window_s`` → ``escalated``: a support case, stock still held;
  the retailer is told, and so is its distributor, whose support queue lists the case
  (core/services/support.py ``queue``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import NotFound, OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.i18n import t
from core.jobs.queue import JobQueue
from core.ledger import AccountRef
from core.logging import get_logger
from core.models import (
    AccountKind,
    Operator,
    Party,
    ProductKind,
    Role,
    SupportCase,
    Topup,
    TopupState,
)
from core.models.topup import OPEN_STATES
from core.models.types import utcnow
from core.money import airtime_asset, format_minor
from core.msisdn import masked, national
from core.providers.port import AirtimeProvider, ProviderStatus, ProviderTransaction, TopupOrder
from core.services.finish import Final, Finisher
from core.services.notify import SMS, Message, Notifier, add_owed, route

log = get_logger(__name__)
topup_t = Topup.__table__  # type: ignore[attr-defined]
party_t = Party.__table__  # type: ignore[attr-defined]

TRANSIENT_BACKOFF_MAX_S = 60  # 1, 2, 4 … 60 s between resends while the provider is unavailable


@dataclass
class Delivery:
    """What a worker process needs to advance top-ups; built once at start-up."""

    core: Core
    provider: AirtimeProvider
    notifier: Notifier
    queue: JobQueue
    finisher: Finisher


@dataclass(slots=True)
class _Open:
    """What a step needs of a top-up row (a plain object: the worker's hot path)."""

    id: str
    party_id: int
    msisdn: str
    operator_code: str
    product_code: str
    kind: str
    amount_minor: int
    currency: str
    state: str
    sends: int
    checks: int
    created_at: datetime
    unknown_since: datetime | None
    provider_txn_id: int | None


_OPEN_COLUMNS = [topup_t.c[name] for name in _Open.__dataclass_fields__]


class _Job(NamedTuple):
    """A top-up with what its notifications need of its retailer (one query)."""

    topup: _Open
    shop_name: str
    shop_msisdn: str
    language: str
    telegram_user_id: int | None
    # (sends, checks) as this step found them: it may only record its successor over exactly
    # that, so a stale run (a replay, a late copy) cannot roll the row back.
    expected: tuple[int, int] = (0, 0)


# Built once: delivery is the worker's hot path (see docs/BENCHMARKS.md).
_LOAD = select(
    *_OPEN_COLUMNS, party_t.c.name, party_t.c.msisdn, party_t.c.language, party_t.c.telegram_user_id
).where(topup_t.c.id == bindparam("id"), party_t.c.id == topup_t.c.party_id)
_shop_t = party_t.alias("shop")
# The retailer's distributor, told of an escalated top-up (its support queue).
_PARENT = (
    select(party_t.c.id, party_t.c.msisdn, party_t.c.language, party_t.c.telegram_user_id)
    .join(_shop_t, _shop_t.c.parent_id == party_t.c.id)
    .where(_shop_t.c.id == bindparam("id"), party_t.c.role == Role.DISTRIBUTOR)
)


def snapshot(
    topup: Topup,
    *,
    shop_name: str,
    shop_msisdn: str,
    language: str,
    telegram_user_id: int | None,
) -> tuple[Any, ...]:
    """What the first step of a new top-up needs, carried in its job (see :func:`advance`)."""
    fields = tuple(getattr(topup, name) for name in _Open.__dataclass_fields__)
    return (*fields, shop_name, shop_msisdn, language, telegram_user_id)


async def _load(d: Delivery, topup_id: str) -> _Job:
    async with d.core.sessions() as session:
        row = (await session.execute(_LOAD, {"id": topup_id})).first()
    if row is None:
        raise LookupError(topup_id)
    *fields, name, msisdn, language, telegram_user_id = row
    topup = _Open(*fields)
    return _Job(topup, name, msisdn, language, telegram_user_id)


async def advance(
    d: Delivery,
    topup_id: str,
    *,
    sends: int,
    checks: int,
    fresh: bool,
    snapshot: tuple[Any, ...] | None = None,
) -> str:
    """Take one step for a top-up; returns its state afterwards. Safe to run twice.

    A fresh step (the first run of the job :func:`~core.services.topups.confirm_topup` enqueued)
    may carry the row as it was committed (``snapshot``); no other run can have moved it yet, so it
    is used as is. Every other step reads the row.
    """
    if fresh and snapshot is not None:
        *fields, name, msisdn, language, telegram_user_id = snapshot
        job = _Job(_Open(*fields), name, msisdn, language, telegram_user_id)
    else:
        job = await _load(d, topup_id)
    topup = job.topup
    if topup.state not in OPEN_STATES or (topup.sends, topup.checks) != (sends, checks):
        return topup.state  # finished, escalated, or this job was overtaken by a later one
    job = job._replace(expected=(sends, checks))
    now = utcnow()
    txn: ProviderTransaction | None = None
    if not fresh:
        try:
            txn = await d.provider.find(reference=topup.id, since=topup.created_at)
        except ProviderUnavailable as exc:
            topup.checks += 1
            return await _later(d, job, now, detail=str(exc))
    if txn is None:
        sent = await _send(d, job, now)
        if isinstance(sent, str):
            return sent
        txn = sent
    if txn.status == ProviderStatus.DELIVERED:
        return await _finish(d, job, TopupState.DELIVERED, txn=txn)
    if txn.status == ProviderStatus.FAILED:
        return await _finish(d, job, TopupState.FAILED, txn=txn, detail=txn.message)
    return await _unknown(d, job, now, detail="pending at the provider", txn=txn)


async def _send(d: Delivery, job: _Job, now: datetime) -> ProviderTransaction | str:
    """The provider's transaction, or the state the top-up was left in when there is none."""
    topup = job.topup
    try:
        operator = (await d.core.catalog.get()).operator(topup.operator_code)
        order = _order(topup, operator, d.core.settings.country)
    except (NotFound, LookupError) as exc:  # the catalog cannot route it: a person must look
        return await _escalate(d, job, detail=f"catalog: {exc}")
    topup.sends += 1
    try:
        return await d.provider.send_topup(order)
    except ProviderRejected as exc:
        log.info("topup.rejected", topup_id=topup.id, code=exc.fields.get("error_code"))
        return await _finish(d, job, TopupState.FAILED, detail=str(exc))
    except OutcomeUnknown as exc:
        return await _unknown(d, job, now, detail=str(exc))
    except ProviderUnavailable as exc:
        return await _later(d, job, now, detail=str(exc))


def _order(topup: _Open, operator: Operator, country: str) -> TopupOrder:
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
    job: _Job,
    state: TopupState,
    *,
    txn: ProviderTransaction | None = None,
    detail: str | None = None,
) -> str:
    """Final state, ledger resolution and owed messages in one transaction (a group commit,
    core/services/finish.py); then the messages go out."""
    topup = job.topup
    asset = airtime_asset(topup.operator_code)
    owed = await d.finisher.finish(
        Final(
            topup_id=topup.id,
            party_id=topup.party_id,
            state=state,
            row={
                "b_id": topup.id,
                "b_state": state,
                "b_final_at": utcnow(),
                "b_sends": topup.sends,
                "b_checks": topup.checks,
                "b_provider_txn_id": txn.transaction_id if txn else None,
                "b_operator_txn_id": txn.operator_transaction_id if txn else None,
                "b_detail": detail[:200] if detail else None,
            },
            stock_account=AccountRef(AccountKind.MAIN, asset, topup.party_id).code,
            owed=_owed(d, job, state, what=await _what(d, topup, job.language)),
        )
    )
    if owed is None:
        return state  # another run finished it first: the provider gave it the same answer
    log.info("topup.final", topup_id=topup.id, state=state, msisdn=masked(topup.msisdn))
    await d.notifier.send(owed)
    return state


def _owed(
    d: Delivery, job: _Job, state: TopupState, *, what: str
) -> Callable[[int], list[Message]]:
    """The messages a final state owes, given the retailer's stock left."""
    topup, lang = job.topup, job.language
    fields = {
        "what": what,
        "number": national(topup.msisdn),
        "ref": topup.id,
    }
    retailer = _retailer(d, job, f"{topup.id}:retailer")
    if state == TopupState.FAILED:
        return lambda _stock: [retailer(t(lang, "topup.failed", **fields))]

    def delivered(stock: int) -> list[Message]:
        left = format_minor(stock, topup.currency)
        return [
            retailer(t(lang, "topup.delivered", **fields, stock=left)),
            Message(
                key=f"{topup.id}:customer",
                channel=SMS,
                recipient=topup.msisdn,
                text=t(lang, "topup.receipt", **fields, shop=job.shop_name),
            ),
        ]

    return delivered


def _retailer(d: Delivery, job: _Job, key: str) -> Callable[[str], Message]:
    """A message to the retailer on its own channel."""
    channel, recipient = route(
        telegram_on=d.notifier.telegram_on,
        telegram_user_id=job.telegram_user_id,
        msisdn=job.shop_msisdn,
    )
    return lambda text: Message(
        key=key, party_id=job.topup.party_id, channel=channel, recipient=recipient, text=text
    )


async def _what(d: Delivery, topup: _Open, language: str) -> str:
    """What was topped up, as the messages name it: "KES 50 airtime", "the 100MB 24h bundle
    (KES 20)"."""
    amount = format_minor(topup.amount_minor, topup.currency)
    products = (await d.core.catalog.get()).products
    if topup.kind == ProductKind.AIRTIME or topup.product_code not in products:
        return t(language, "topup.what_airtime", amount=amount)
    name = products[topup.product_code].name
    return t(language, "topup.what_bundle", name=name, amount=amount)


async def _unknown(
    d: Delivery, job: _Job, now: datetime, *, detail: str, txn: ProviderTransaction | None = None
) -> str:
    """Not known yet: query its status after the next gap of the back-off schedule."""
    topup = job.topup
    since = topup.unknown_since or now
    if now - since >= timedelta(seconds=d.core.settings.topup_unknown_window_s):
        return await _escalate(d, job, detail=detail)
    gaps = d.core.settings.topup_status_backoff_s
    delay_s = gaps[min(topup.checks, len(gaps) - 1)]
    topup.checks += 1
    log.info("topup.unknown", topup_id=topup.id, detail=detail, next_check_s=delay_s)
    return await _schedule(
        d,
        job,
        delay_s=delay_s,
        state=TopupState.UNKNOWN,
        unknown_since=since,
        detail=detail[:200],
        provider_txn_id=txn.transaction_id if txn else topup.provider_txn_id,
    )


async def _later(d: Delivery, job: _Job, now: datetime, *, detail: str) -> str:
    """The provider could not be reached: the same step again after a short back-off."""
    topup = job.topup
    if now - topup.created_at >= timedelta(seconds=d.core.settings.topup_unknown_window_s):
        return await _escalate(d, job, detail=detail)
    delay_s = min(2 ** min(topup.sends + topup.checks, 6), TRANSIENT_BACKOFF_MAX_S)
    log.info("topup.provider_unavailable", topup_id=topup.id, detail=detail, retry_s=delay_s)
    state = TopupState(topup.state)
    return await _schedule(d, job, delay_s=delay_s, state=state, detail=detail[:200])


def _unmoved(job: _Job) -> Any:
    """The row is still open and still where this step found it."""
    return and_(
        topup_t.c.id == job.topup.id,
        topup_t.c.state.in_(OPEN_STATES),
        topup_t.c.sends == job.expected[0],
        topup_t.c.checks == job.expected[1],
    )


async def _schedule(
    d: Delivery, job: _Job, *, delay_s: float, state: TopupState, **values: object
) -> str:
    """Record the next step (unless another run moved the top-up on), then enqueue it."""
    topup = job.topup
    async with d.core.transaction() as session:
        moved = (
            await session.execute(
                update(topup_t)
                .where(_unmoved(job))
                .values(
                    state=state,
                    sends=topup.sends,
                    checks=topup.checks,
                    due_at=utcnow() + timedelta(seconds=delay_s),
                    **values,
                )
                .returning(topup_t.c.state)
            )
        ).first()
    if moved is None:
        return topup.state  # another run moved it on; that run schedules what comes next
    await d.queue.deliver(
        topup.id, sends=topup.sends, checks=topup.checks, fresh=False, defer_s=delay_s
    )
    return state


async def _to_distributor(
    d: Delivery, session: AsyncSession, job: _Job, fields: dict[str, object]
) -> list[Message]:
    """The escalation's message to the retailer's distributor (none if its parent is not one)."""
    parent = (await session.execute(_PARENT, {"id": job.topup.party_id})).first()
    if parent is None:
        return []
    parent_id, msisdn, language, telegram_user_id = parent
    channel, recipient = route(
        telegram_on=d.notifier.telegram_on, telegram_user_id=telegram_user_id, msisdn=msisdn
    )
    return [
        Message(
            key=f"{job.topup.id}:escalated:parent",
            party_id=parent_id,
            channel=channel,
            recipient=recipient,
            text=t(language, "alert.case", **fields, name=job.shop_name[:24]),
        )
    ]


async def _escalate(d: Delivery, job: _Job, *, detail: str) -> str:
    """Unresolved past the window: a support case; the stock stays held until it is resolved."""
    topup = job.topup
    async with d.core.transaction() as session:
        moved = (
            await session.execute(
                update(topup_t)
                .where(_unmoved(job))
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
        fields: dict[str, object] = {
            "amount": format_minor(topup.amount_minor, topup.currency),
            "number": national(topup.msisdn),
            "case": case.id,
        }
        text = t(job.language, "topup.escalated", **fields, ref=topup.id)
        messages = [_retailer(d, job, f"{topup.id}:escalated")(text)]
        messages += await _to_distributor(d, session, job, fields)
        owed = await add_owed(session, messages)
    log.warning("topup.escalated", topup_id=topup.id, case=case.id, detail=detail)
    await d.notifier.send(owed)
    return TopupState.ESCALATED
