"""Sending a top-up to the accounts of its operator's route until one takes it (core/routing/).

Invariant (docs/PROVIDERS.md, "Routing"): the top-up moves to the next account only after a
definite no from the one before (refused, its own "failed", not sent, or no id for the
operator in the catalog). Before each send the account is recorded on the row (when there is more
than one account), so a worker dying mid-send leaves the top-up with the account that may have it.
Anything that may have been applied (an unknown outcome, a 5xx) ends the step with the top-up where
it is. core/services/delivery.py acts on what :func:`send` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import update

from core.catalog_snapshot import Catalog
from core.context import Core
from core.errors import NotFound, NotSent, OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.logging import get_logger
from core.models import ProductKind
from core.providers.port import Outcome, ProviderTransaction, TopupOrder
from core.routing.router import Account, Router, Tried
from core.services.delivery_rows import Job, OpenTopup, topup_t, unmoved

log = get_logger(__name__)


class Then(StrEnum):
    """What the step does next."""

    TAKEN = "taken"  # an account answered with a transaction (delivered or pending)
    UNKNOWN = "unknown"  # it may have been applied: status queries at the account holding it
    LATER = "later"  # nothing took it yet (not sent, breakers open, a 5xx): the same step later
    FAILED = "failed"  # every account of the route said no: release the stock
    ESCALATE = "escalate"  # no account has an id for the operator: a person must look
    MOVED = "moved"  # another run moved the top-up on


@dataclass(frozen=True, slots=True)
class Sent:
    then: Then
    txn: ProviderTransaction | None = None
    detail: str = ""


@dataclass
class _Step:
    core: Core
    router: Router
    job: Job
    tried: Tried
    catalog: Catalog
    failed: ProviderTransaction | None
    last: str


async def send(
    *,
    core: Core,
    router: Router,
    job: Job,
    tried: Tried,
    failed: ProviderTransaction | None = None,
    holder: Account | None = None,
) -> Sent:
    """Offer the top-up to its route's accounts in order (those whose breaker admits it).

    ``holder`` was sent the top-up before and says it has no record of it; its report may lag, so
    it is asked first, and only its definite no (refused, failed) lets the top-up go elsewhere.
    ``failed``: the holder's own "failed" for it, the answer if nobody else takes it.
    """
    topup = job.topup
    route = router.route(topup.operator_code)
    candidates = [a for a in route if not tried.said_no(a.name) and a is not holder]
    if holder is not None and not tried.said_no(holder.name):
        candidates.insert(0, holder)
    last = failed.message if failed else "no account of the route admits it now (breakers open)"
    step = _Step(core, router, job, tried, await core.catalog.get(), failed, last)
    while candidates:
        pinned = candidates[0] is holder
        account = await router.admit(topup.operator_code, candidates[:1] if pinned else candidates)
        if account is None:
            if pinned:
                return Sent(Then.LATER, detail=f"{step.last}; {candidates[0].name} holds it")
            break
        candidates.remove(account)
        if (sent := await _attempt(step, account, pinned=pinned)) is not None:
            return sent
    topup.provider = None  # nowhere holds it
    if any(not tried.said_no(account.name) for account in route):
        return Sent(Then.LATER, detail=step.last)  # not sent, or its breaker is open
    if tried.whys() == {"no_id"}:
        return Sent(Then.ESCALATE, detail=step.last)
    return Sent(Then.FAILED, txn=step.failed, detail=step.last)


async def _attempt(step: _Step, account: Account, *, pinned: bool) -> Sent | None:
    """One account's answer as the step's end, or None: a definite no, try the next."""
    topup = step.job.topup
    try:
        order = _order(topup, step.catalog, provider=account.adapter)
    except (NotFound, LookupError) as exc:  # the catalog names no id for it there
        step.tried.add(account.name, "no_id")
        step.last = f"catalog: {exc}"
        return None
    if step.router.choosing and not await _hold(step.core, step.job, account):
        return Sent(Then.MOVED)
    topup.sends += 1
    topup.provider = account.name
    try:
        txn = await step.router.send(account, order)
    except ProviderRejected as exc:
        code = exc.fields.get("error_code")
        log.info("topup.rejected", topup_id=topup.id, account=account.name, code=code)
        step.tried.add(account.name, "refused")
        step.last = str(exc)
        return None
    except NotSent as exc:
        if pinned:  # its first send may yet show there: the top-up stays with it
            return Sent(Then.LATER, detail=str(exc))
        step.tried.add(account.name, "not_sent")
        step.last = str(exc)
        return None
    except OutcomeUnknown as exc:
        return Sent(Then.UNKNOWN, detail=str(exc))
    except ProviderUnavailable as exc:  # may be half-processed: it stays with this account
        return Sent(Then.LATER, detail=str(exc))
    if txn.outcome != Outcome.FAILED:
        return Sent(Then.TAKEN, txn=txn)
    step.tried.add(account.name, "failed")
    step.failed, step.last = txn, txn.message
    return None


async def _hold(core: Core, job: Job, account: Account) -> bool:
    """Record the account before sending to it, so a crash mid-send leaves the top-up with it
    (the next run asks it, and nobody else); False if another run moved the top-up on."""
    async with core.transaction() as session:
        held = (
            await session.execute(
                update(topup_t)
                .where(unmoved(job))
                .values(provider=account.name, providers_tried=job.topup.providers_tried)
                .returning(topup_t.c.id)
            )
        ).first()
    return held is not None


def _order(topup: OpenTopup, catalog: Catalog, *, provider: str) -> TopupOrder:
    """The order in our terms, with the aggregator's id for the operator from the catalog."""
    operator = catalog.operator(topup.operator_code)
    bundle = topup.kind != ProductKind.AIRTIME
    return TopupOrder(
        reference=topup.id,
        msisdn=topup.msisdn,
        country=operator.country,
        operator=operator.code,
        operator_ref=catalog.operator_ref(operator.code, provider=provider, bundle=bundle),
        amount_minor=topup.amount_minor,
        currency=topup.currency,
    )
