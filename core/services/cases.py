"""Support cases to resolution: a retailer's report answered at once from the aggregator's record
when it can be; otherwise the retailer's distributor settles it (retry, refund, close with a
note) or, past ``case_answer_s``, the platform (also delivered or failed, with the evidence).

Invariant: money moves only on the paths that move it everywhere else. A held top-up becomes
final through the finisher (capture or release, its case closed in the same transaction:
core/services/finish.py); a delivered top-up's stock goes back by one correcting transfer keyed
by its case (at most once). Nothing is settled on a guess: a retry or a refund of a held one needs
the aggregator's word that it is not pending there (never while the outcome is unknown); only the
platform may settle one against the aggregator's silence, with a note. Every action writes an
audit row, and the retailer is told. What is shown is in case_views.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.errors import InputError, NotFound, ProviderUnavailable, Refused
from core.ledger import AccountRef, Leg, Overdraft
from core.logging import get_logger
from core.models import AccountKind, CaseState, Resolution, TopupState
from core.models.topup import SETTLEABLE_STATES
from core.models.types import utcnow
from core.money import airtime_asset
from core.providers.port import Outcome, ProviderTransaction
from core.services import delivery_rows, support
from core.services.audit import Actor, record
from core.services.case_views import CaseView, case_t, fields_of, get, topup_t
from core.services.chain import get_party
from core.services.delivery import final_for
from core.services.finish import Finisher
from core.services.notify import Message, add_owed
from core.services.requests.messages import message_to

log = get_logger(__name__)
Outbox = Callable[[Sequence[Message]], Awaitable[object]]  # sends what a commit owes


class Action(StrEnum):
    DELIVERED = "delivered"  # the platform: it arrived (capture)
    FAILED = "failed"  # the platform: it did not (release)
    RETRY = "retry"  # send it again under the same reference
    REFUND = "refund"  # release a held top-up, or give a delivered one's stock back
    CLOSE = "close"  # nothing to settle: a note


DISTRIBUTOR_ACTIONS = (Action.RETRY, Action.REFUND, Action.CLOSE)
# Why an action is refused, as the catalogue's keys (a channel shows them in the user's language).
WHY_RESOLVED, WHY_NOTE, WHY_WORKER = "cases.why_resolved", "cases.why_note", "cases.why_worker"
WHY_UNKNOWN, WHY_FINAL, WHY_HELD = "cases.why_unknown", "cases.why_final", "cases.why_held"
WHY_STOCK, WHY_OTHER = "cases.why_stock", "cases.why_other"
RECON_REASONS = ("recon_amount", "recon_status", "recon_missing", "recon_unknown")


@dataclass(frozen=True, slots=True)
class Asked:
    """What the aggregator said of a top-up's reference when asked (``error``: it could not)."""

    txn: ProviderTransaction | None
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.txn is not None and self.txn.outcome is not Outcome.UNKNOWN

    def evidence(self) -> dict[str, Any]:
        said: dict[str, Any] = {"asked_at": utcnow().isoformat()}
        if self.error is not None:
            return said | {"error": self.error[:200]}
        if self.txn is None:
            return said | {"aggregator": None}  # it holds no transaction with our reference
        tx = self.txn
        return said | {
            "aggregator": {
                "outcome": str(tx.outcome),
                "provider_ref": tx.provider_ref,
                "operator_ref": tx.operator_ref,
                "amount_minor": tx.delivered_minor,
                "at": tx.at.isoformat(),
            }
        }


@dataclass(frozen=True, slots=True)
class Done:
    """What an action did, as a text key of the ``cases`` catalogue and its fields."""

    case_id: int
    key: str
    fields: dict[str, object] = field(default_factory=dict)


async def ask(core: Core, view: CaseView) -> Asked:
    """The aggregator's record of the case's top-up, within ``case_lookup_timeout_s``."""
    if view.topup_id is None or view.topup_created_at is None:
        return Asked(None, error="no top-up")
    try:
        async with asyncio.timeout(core.settings.case_lookup_timeout_s):
            holder = core.provider_of(view.provider)  # where it is: never another account
            txn = await holder.find(reference=view.topup_id, since=view.topup_created_at)
    except (ProviderUnavailable, TimeoutError, NotFound) as exc:
        return Asked(None, error=str(exc) or type(exc).__name__)
    return Asked(txn)


async def settle(
    core: Core,
    topup_id: str,
    state: TopupState,
    *,
    closing: support.Closing,
    outbox: Outbox,
    txn: ProviderTransaction | None = None,
    finisher: Finisher | None = None,
) -> bool:
    """Make a held top-up final (the worker's own path, its case closed with ``closing``);
    False if it already was."""
    job = await delivery_rows.load(core.sessions, topup_id)
    final = final_for(
        job,
        state,
        catalog=await core.catalog.get(),
        telegram_on=bool(core.settings.telegram_token),
        txn=txn,
        detail=f"settled by {closing.actor.label}"[:200],
        closing=closing,
    )
    owed = await (finisher or Finisher(core)).finish(final)
    if owed is None:
        return False
    await outbox(owed)
    return True


async def resolve(
    core: Core,
    *,
    case_id: int,
    action: Action,
    actor: Actor,
    outbox: Outbox,
    note: str | None = None,
    distributor_id: int | None = None,
    requeue: Callable[[str, int, int], Awaitable[object]] | None = None,
) -> Done:
    """Act on an open case: as its retailer's distributor (``distributor_id``: retry, refund or
    close) or as the platform (any action)."""
    view = await get(core, case_id)
    if distributor_id is not None and (
        view.parent_id != distributor_id or action not in DISTRIBUTOR_ACTIONS
    ):
        raise NotFound(kind="support case", key=str(case_id))
    if view.state != CaseState.OPEN:
        raise Refused(
            reason=f"case {case_id} is already resolved ({view.resolution})", why=WHY_RESOLVED
        )
    note = " ".join((note or "").split())[:400] or None
    log.info("case.action", case=case_id, action=str(action), by=actor.label)
    if action is Action.CLOSE:
        return await _close(core, view, actor=actor, note=note, outbox=outbox)
    if view.topup_id is None:
        raise Refused(
            reason=f"case {case_id} has no top-up of ours: it can only be closed", why=WHY_OTHER
        )
    if action in (Action.DELIVERED, Action.FAILED):
        if note is None:
            raise InputError(
                reason="settling a case needs a note: the evidence it rests on", why=WHY_NOTE
            )
        _held(view)
        state = TopupState.DELIVERED if action is Action.DELIVERED else TopupState.FAILED
        closing = support.Closing(actor=actor, note=note, evidence={"by": actor.label})
        await settle(core, view.topup_id or "", state, closing=closing, outbox=outbox)
        return Done(case_id, f"cases.done_{action}", fields_of(view))
    if view.topup_state == TopupState.DELIVERED and action is Action.REFUND:
        return await _refund_transfer(core, view, actor=actor, note=note, outbox=outbox)
    return await _on_held(
        core, view, action, actor=actor, note=note, outbox=outbox, requeue=requeue
    )


async def _on_held(
    core: Core,
    view: CaseView,
    action: Action,
    *,
    actor: Actor,
    note: str | None,
    outbox: Outbox,
    requeue: Callable[[str, int, int], Awaitable[object]] | None,
) -> Done:
    """Retry or refund a top-up whose stock is held: only on the aggregator's final word."""
    _held(view)
    if view.topup_state != TopupState.ESCALATED:
        raise Refused(
            reason=f"top-up {view.topup_id} is still being delivered by the worker", why=WHY_WORKER
        )
    asked = await ask(core, view)
    if asked.error is not None or (asked.txn is not None and not asked.final):
        raise Refused(
            reason="the aggregator's answer is not final yet: the outcome is unknown",
            why=WHY_UNKNOWN,
        )
    if asked.txn is not None:  # it answered: its record settles the case, whatever was asked
        state = (
            TopupState.DELIVERED if asked.txn.outcome is Outcome.DELIVERED else TopupState.FAILED
        )
        closing = support.Closing(actor=actor, note=note, evidence=asked.evidence())
        await settle(
            core, view.topup_id or "", state, closing=closing, outbox=outbox, txn=asked.txn
        )
        return Done(view.id, f"cases.found_{state}", fields_of(view))
    if action is Action.REFUND:  # the aggregator never had it: nothing can arrive, release it
        closing = support.Closing(actor=actor, note=note, evidence=asked.evidence())
        await settle(core, view.topup_id or "", TopupState.FAILED, closing=closing, outbox=outbox)
        return Done(view.id, "cases.done_released", fields_of(view))
    return await _retry(core, view, actor=actor, asked=asked, outbox=outbox, requeue=requeue)


def _held(view: CaseView) -> None:
    if view.topup_state not in SETTLEABLE_STATES:
        raise Refused(reason=f"top-up {view.topup_id} is already {view.topup_state}", why=WHY_FINAL)


async def _retry(
    core: Core,
    view: CaseView,
    *,
    actor: Actor,
    asked: Asked,
    outbox: Outbox,
    requeue: Callable[[str, int, int], Awaitable[object]] | None,
) -> Done:
    """Back to the worker under the same reference: it looks the reference up before it sends,
    so the aggregator can never deliver it twice. The case stays open until it is final."""
    async with core.money() as session:
        moved = (
            await session.execute(
                update(topup_t)
                .where(topup_t.c.id == view.topup_id, topup_t.c.state == TopupState.ESCALATED)
                .values(
                    state=TopupState.RESERVED,
                    due_at=utcnow(),
                    unknown_since=utcnow(),  # the unknown window starts again here
                    detail=f"retried from case {view.id}",
                )
                .returning(topup_t.c.sends, topup_t.c.checks)
            )
        ).first()
        if moved is None:
            raise Refused(
                reason=f"top-up {view.topup_id} moved on meanwhile: look again", why=WHY_OTHER
            )
        sends, checks = moved
        evidence = {**view.evidence, "retried": asked.evidence() | {"by": actor.label}}
        await session.execute(
            update(case_t).where(case_t.c.id == view.id).values(evidence=evidence)
        )
        await _audit(session, actor, view, "support.retry", None)
        owed = await _tell(core, session, view, f"case:{view.id}:retry:{sends}", "cases.told_retry")
    await outbox(owed)
    if requeue is not None:  # else the sweeper finds it due
        await requeue(view.topup_id or "", sends, checks)
    return Done(view.id, "cases.done_retry", fields_of(view))


async def _close(
    core: Core, view: CaseView, *, actor: Actor, note: str | None, outbox: Outbox
) -> Done:
    if note is None:
        raise InputError(reason="closing a case needs a note", why=WHY_NOTE)
    if view.topup_state in SETTLEABLE_STATES:
        raise Refused(reason=f"case {view.id} holds the top-up's stock: retry or refund it instead")
    async with core.transaction() as session:
        if not await _resolved(session, view, actor, Resolution.CLOSED, note):
            raise Refused(reason=f"case {view.id} is already resolved", why=WHY_RESOLVED)
        await _audit(session, actor, view, "support.close", note)
        owed = await _tell(
            core, session, view, f"case:{view.id}:closed", "cases.told_closed", note=note
        )
    await outbox(owed)
    return Done(view.id, "cases.done_closed", fields_of(view))


async def _refund_transfer(
    core: Core, view: CaseView, *, actor: Actor, note: str | None, outbox: Outbox
) -> Done:
    """A delivered top-up's stock back to the retailer, from its distributor, with the reason."""
    if note is None:
        raise InputError(reason="a refund needs a reason", why=WHY_NOTE)
    assert view.topup_id is not None and view.amount_minor is not None
    payer_id = actor.party_id or view.parent_id
    if payer_id is None:
        raise Refused(
            reason=f"the retailer of case {view.id} has no distributor to refund it", why=WHY_OTHER
        )
    asset = airtime_asset(view.operator_code or "")
    leg = Leg(
        "refund",
        AccountRef(AccountKind.MAIN, asset, payer_id),
        AccountRef(AccountKind.MAIN, asset, view.party_id),
        view.amount_minor,
        reference=view.topup_id,
        memo=note,
    )
    async with core.money(payer=payer_id) as session:
        if not await _resolved(session, view, actor, Resolution.RETURNED, note):
            raise Refused(reason=f"case {view.id} is already resolved", why=WHY_RESOLVED)
        try:
            await core.ledger.post(session, op_key=f"refund:case{view.id}", legs=[leg])
        except Overdraft as exc:
            payer = await get_party(session, payer_id, country=core.settings.country)
            raise Refused(
                reason=f"{payer.label} holds {exc.available_minor} of {asset}, "
                f"{view.amount_minor} needed for the refund",
                why=WHY_STOCK,
            ) from None
        await _audit(session, actor, view, "support.refund", note)
        owed = await _tell(
            core, session, view, f"case:{view.id}:returned", "cases.told_returned", note=note
        )
    await outbox(owed)
    return Done(view.id, "cases.done_returned", fields_of(view))


async def _resolved(
    session: AsyncSession, view: CaseView, actor: Actor, resolution: Resolution, note: str
) -> bool:
    """Mark the case resolved, if it is still open (one action wins)."""
    done = await session.execute(
        update(case_t)
        .where(case_t.c.id == view.id, case_t.c.state == CaseState.OPEN)
        .values(
            state=CaseState.RESOLVED,
            resolution=resolution,
            resolved_by=actor.label,
            resolved_at=utcnow(),
            note=note,
        )
        .returning(case_t.c.id)
    )
    return done.first() is not None


async def _audit(
    session: AsyncSession, actor: Actor, view: CaseView, action: str, note: str | None
) -> None:
    await record(
        session,
        actor=actor,
        action=action,
        subject_party_id=view.party_id,
        reference=view.topup_id or view.reference,
        details={"case": view.id, "note": note},
    )


async def _tell(
    core: Core, session: AsyncSession, view: CaseView, key: str, text_key: str, **extra: object
) -> list[Message]:
    """The retailer is told what became of its case."""
    shop = await get_party(session, view.party_id, country=core.settings.country)
    message = await message_to(core, session, shop, key, text_key, fields_of(view) | extra)
    return await add_owed(session, [message])


async def open_case_ids(core: Core, *, limit: int) -> list[int]:
    """Open cases, oldest first (the CLI's and the platform's queue)."""
    query = (
        select(case_t.c.id)
        .where(case_t.c.state == CaseState.OPEN)
        .order_by(case_t.c.opened_at, case_t.c.id)
        .limit(limit)
    )
    async with core.sessions() as session:
        return [int(i) for i in (await session.execute(query)).scalars()]
