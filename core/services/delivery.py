"""Delivering a confirmed top-up: send, then capture, release or find out.

Invariant: stock is captured only on the provider's word that the top-up was delivered, released
only on its word that it was not; anything else (a time-out, a 5xx, a crash) leaves the reservation
held and the top-up open, to be looked up by its reference. Every request to the provider carries
the top-up id as its reference, so a resend can never deliver twice.

One step (:func:`advance`) per job:

- a fresh top-up is sent; any other run first asks the account holding it (``topup.provider``)
  what became of the reference (a crashed worker may have sent it) and sends only if that account
  has no record of it;
- the send goes to the first account of the operator's route whose breaker admits it
  (core/services/sending.py, core/routing/); a definite no there (refused, not sent, its
  own "failed") offers it to the next, under the same reference; anything that may have been
  applied keeps it where it is;
- delivered → capture + notifications; failed or refused → release + notifications;
- pending, time-out → ``unknown``: status queries on the configured back-off;
- provider unavailable → the same reference again after a short back-off;
- still open ``topup_unknown_window_s`` after it was made, or since its outcome became unknown, or
  since a case retried it → ``escalated``: a support case, stock still held;
  the retailer is told, and so is its distributor, whose support queue lists the case
  (core/services/support.py ``queue``).

What a step reads of a top-up is delivery_rows.py; the messages it owes, delivery_notices.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from core.catalog_snapshot import Catalog
from core.context import Core
from core.errors import ProviderUnavailable
from core.i18n import t
from core.jobs.queue import JobQueue
from core.ledger import AccountRef
from core.logging import get_logger
from core.models import AccountKind, TopupState
from core.models.topup import OPEN_STATES
from core.models.types import utcnow
from core.money import airtime_asset, format_minor
from core.msisdn import masked, national
from core.providers.port import Outcome, ProviderTransaction
from core.routing.router import Account, Router, Tried
from core.services import delivery_notices as notices
from core.services import sending, support
from core.services.delivery_rows import Job, load, snapshot, topup_t, unmoved, unpack
from core.services.finish import Final, Finisher
from core.services.notify import Notifier, add_owed
from core.services.sending import Sent, Then

# snapshot: what topups.py carries in a new job; final_for: what cases.py settles with
__all__ = ["Delivery", "advance", "final_for", "snapshot"]

log = get_logger(__name__)

TRANSIENT_BACKOFF_MAX_S = 60  # 1, 2, 4 … 60 s between resends while the provider is unavailable


@dataclass
class Delivery:
    """What a worker process needs to advance top-ups; built once at start-up."""

    core: Core
    router: Router  # the aggregator accounts, their routes and health
    notifier: Notifier
    queue: JobQueue
    finisher: Finisher


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
        job = unpack(snapshot)
    else:
        job = await load(d.core.sessions, topup_id)
    topup = job.topup
    if topup.state not in OPEN_STATES or (topup.sends, topup.checks) != (sends, checks):
        return topup.state  # finished, escalated, or this job was overtaken by a later one
    job = job._replace(expected=(sends, checks))
    now = utcnow()
    txn: ProviderTransaction | None = None
    failed: ProviderTransaction | None = None
    holder: Account | None = None
    tried = Tried(topup)
    if not fresh and (topup.provider is not None or not tried.entries):
        asked = await _ask_holder(d, job, now)
        if isinstance(asked, str):
            return asked
        txn, holder = asked
        if txn is not None and txn.outcome == Outcome.FAILED and d.router.choosing:
            tried.add(holder.name, "failed")  # resolved as failed there: free to go elsewhere
            failed, txn = txn, None
    if txn is None:
        sent = await sending.send(
            core=d.core, router=d.router, job=job, tried=tried, failed=failed, holder=holder
        )
        if sent.then is not Then.TAKEN or sent.txn is None:
            return await _not_taken(d, job, now, sent)
        txn = sent.txn
    if txn.outcome == Outcome.DELIVERED:
        return await _finish(d, job, TopupState.DELIVERED, txn=txn)
    if txn.outcome == Outcome.FAILED:
        return await _finish(d, job, TopupState.FAILED, txn=txn, detail=txn.message)
    return await _unknown(d, job, now, detail="pending at the provider", txn=txn)


async def _ask_holder(
    d: Delivery, job: Job, now: datetime
) -> tuple[ProviderTransaction | None, Account] | str:
    """What the account holding the top-up (which may have applied it) says of it, and that
    account; or the state the top-up was left in when it cannot be asked."""
    topup = job.topup
    holder = d.router.holder(topup.provider)
    if holder is None:  # its account was removed from the settings: a person must look
        return await _escalate(d, job, detail=f"account {topup.provider} is not configured")
    try:
        return await holder.provider.find(reference=topup.id, since=topup.created_at), holder
    except ProviderUnavailable as exc:
        topup.checks += 1
        return await _later(d, job, now, detail=str(exc))


async def _not_taken(d: Delivery, job: Job, now: datetime, sent: Sent) -> str:
    """The step's end when no account took the top-up (core/services/sending.py)."""
    if sent.then is Then.UNKNOWN:
        return await _unknown(d, job, now, detail=sent.detail)
    if sent.then is Then.LATER:
        if job.topup.sends == job.expected[0]:  # nothing sent (breakers open): still a new step,
            job.topup.checks += 1  # so the next job has an id of its own, and backs off further
        return await _later(d, job, now, detail=sent.detail)
    if sent.then is Then.FAILED:
        return await _finish(d, job, TopupState.FAILED, txn=sent.txn, detail=sent.detail)
    if sent.then is Then.ESCALATE:
        return await _escalate(d, job, detail=sent.detail)
    return job.topup.state  # moved on by another run


async def _finish(
    d: Delivery,
    job: Job,
    state: TopupState,
    *,
    txn: ProviderTransaction | None = None,
    detail: str | None = None,
) -> str:
    """Final state, ledger resolution and owed messages in one transaction (a group commit,
    core/services/finish.py); then the messages go out."""
    catalog = await d.core.catalog.get()
    final = final_for(
        job, state, catalog=catalog, telegram_on=d.notifier.telegram_on, txn=txn, detail=detail
    )
    owed = await d.finisher.finish(final)
    if owed is None:
        return state  # another run finished it first: the provider gave it the same answer
    log.info("topup.final", topup_id=job.topup.id, state=state, msisdn=masked(job.topup.msisdn))
    await d.notifier.send(owed)
    return state


def final_for(
    job: Job,
    state: TopupState,
    *,
    catalog: Catalog,
    telegram_on: bool,
    txn: ProviderTransaction | None = None,
    detail: str | None = None,
    closing: support.Closing | None = None,
) -> Final:
    """A top-up's final state as the finisher writes it (also a case's settlement, with
    ``closing``: core/services/cases.py)."""
    topup = job.topup
    asset = airtime_asset(topup.operator_code)
    return Final(
        topup_id=topup.id,
        party_id=topup.party_id,
        state=state,
        row={
            "b_id": topup.id,
            "b_state": state,
            "b_final_at": utcnow(),
            "b_sends": topup.sends,
            "b_checks": topup.checks,
            "b_provider": topup.provider,
            "b_providers_tried": topup.providers_tried,
            "b_provider_ref": txn.provider_ref if txn else topup.provider_ref,
            "b_operator_txn_id": txn.operator_ref if txn else None,
            "b_detail": detail[:200] if detail else None,
        },
        stock_account=AccountRef(AccountKind.MAIN, asset, topup.party_id).code,
        owed=notices.owed(
            job, state, what=notices.what(catalog, topup, job.language), telegram_on=telegram_on
        ),
        closing=closing,
    )


async def _unknown(
    d: Delivery, job: Job, now: datetime, *, detail: str, txn: ProviderTransaction | None = None
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
        provider_ref=txn.provider_ref if txn else topup.provider_ref,
    )


async def _later(d: Delivery, job: Job, now: datetime, *, detail: str) -> str:
    """The provider could not be reached: the same step again after a short back-off."""
    topup = job.topup
    since = topup.unknown_since or topup.created_at  # a case's retry starts the window again
    if now - since >= timedelta(seconds=d.core.settings.topup_unknown_window_s):
        return await _escalate(d, job, detail=detail)
    delay_s = min(2 ** min(topup.sends + topup.checks, 6), TRANSIENT_BACKOFF_MAX_S)
    log.info("topup.provider_unavailable", topup_id=topup.id, detail=detail, retry_s=delay_s)
    state = TopupState(topup.state)
    return await _schedule(d, job, delay_s=delay_s, state=state, detail=detail[:200])


async def _schedule(
    d: Delivery, job: Job, *, delay_s: float, state: TopupState, **values: object
) -> str:
    """Record the next step (unless another run moved the top-up on), then enqueue it."""
    topup = job.topup
    async with d.core.transaction() as session:
        moved = (
            await session.execute(
                update(topup_t)
                .where(unmoved(job))
                .values(
                    state=state,
                    sends=topup.sends,
                    checks=topup.checks,
                    provider=topup.provider,
                    providers_tried=topup.providers_tried,
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


async def _escalate(d: Delivery, job: Job, *, detail: str) -> str:
    """Unresolved past the window: a support case; the stock stays held until it is resolved."""
    topup = job.topup
    async with d.core.transaction() as session:
        moved = (
            await session.execute(
                update(topup_t)
                .where(unmoved(job))
                .values(
                    state=TopupState.ESCALATED,
                    sends=topup.sends,
                    checks=topup.checks,
                    provider=topup.provider,
                    providers_tried=topup.providers_tried,
                    detail=detail[:200],
                )
                .returning(topup_t.c.id)
            )
        ).first()
        if moved is None:
            return TopupState.ESCALATED
        case_id, new = await support.case_for_escalation(
            session, topup_id=topup.id, party_id=topup.party_id
        )
        fields: dict[str, object] = {
            "amount": format_minor(topup.amount_minor, topup.currency),
            "number": national(topup.msisdn),
            "case": case_id,
        }
        text = t(job.language, "topup.escalated", **fields, ref=topup.id)
        on = d.notifier.telegram_on
        messages = [notices.retailer(job, f"{topup.id}:escalated", telegram_on=on)(text)]
        messages += await notices.to_distributor(session, job, fields, telegram_on=on)
        # A case that was already open (reported, or retried) told them when it opened.
        owed = await add_owed(session, messages if new else [])
    log.warning("topup.escalated", topup_id=topup.id, case=case_id, detail=detail)
    await d.notifier.send(owed)
    return TopupState.ESCALATED
