"""Reconciliation: each class of mismatch injected at the sandbox, classified and acted on; ours
still open settled from the aggregator's record; a second run changes nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from core.models import SupportCase
from core.services import case_views
from core.services.reconcile import Kind, reconcile
from tests.helpers import assert_ledger_ok
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_cases import ESCALATED, Sent, _tamper
from tests.lifecycle.test_paths import _shop, _top_up

TABLES = ("topup", "support_case", "reservation", "transfer", "notification", "account")


@pytest.fixture
def rig_overrides() -> dict[str, Any]:
    return {"topup_unknown_window_s": 2}


@pytest.fixture
def sandbox_config() -> Any:
    from tests.lifecycle.test_cases import SandboxConfig

    return SandboxConfig(hang_s=3.0, settle_s=3600, slow_ms=1500, seed=7)


# The worker sends notifications meanwhile (their state, attempts and sent_at are its own): what
# reconciliation writes of one is that it exists and what it says.
COLUMNS = {"notification": "id, key, party_id, via, recipient, text"}


async def _snapshot(rig: Rig) -> dict[str, list[Any]]:
    """Every row of the tables reconciliation may touch (audit rows counted)."""
    found: dict[str, list[Any]] = {}
    async with rig.core.sessions() as session:
        for table in (*TABLES, "audit_event", "recon_line"):
            columns = COLUMNS.get(table, "*")
            query = text(f"SELECT {columns} FROM {table} ORDER BY 1")
            rows = (await session.execute(query)).all()
            found[table] = [tuple(str(v) for v in row) for row in rows]
    return found


async def test_every_class_is_found_and_acted_on_and_a_second_run_changes_nothing(
    rig: Rig,
) -> None:
    shop = await _shop(rig)
    made = await asyncio.gather(
        *(
            _top_up(rig, shop, digit, amount_minor=1_000 + 100 * n)
            for n, digit in enumerate([0, 0, 0, 1, 0, 2, 2, 2])
        )
    )
    matched, amount, reversed_, failed, dropped, resolved, refunded, pending = [t.id for t in made]
    for topup_id in (matched, amount, reversed_, failed, dropped):
        await rig.wait(topup_id)
    for topup_id in (resolved, refunded, pending):
        await rig.wait(topup_id, states=ESCALATED)
    await _tamper(rig, reference=amount, amount=20)  # it says KES 20, we said KES 11
    await _tamper(rig, reference=reversed_, status="FAILED")  # we delivered, it failed
    await _tamper(rig, reference=failed, status="SUCCESSFUL")  # we failed, it delivered
    await _tamper(rig, reference=dropped, drop=True)  # we delivered, it has no record
    await _tamper(rig, reference=resolved, status="SUCCESSFUL")  # ours escalated: settle it
    await _tamper(rig, reference=refunded, status="REFUNDED")
    await _tamper(rig, add={"reference": None, "recipient": "0712345678", "amount": 75})

    day = datetime.now(ZoneInfo(rig.settings.timezone)).date()
    report = await reconcile(rig.core, rig.core.provider, day=day, outbox=Sent())
    counts = {k: v.count for k, v in report.classes.items()}
    assert counts == {
        Kind.MATCHED: 1,
        Kind.RESOLVED: 2,
        Kind.PENDING: 1,
        Kind.AMOUNT: 1,
        Kind.STATUS: 2,
        Kind.MISSING: 1,
        Kind.UNKNOWN_TO_US: 1,
    }
    assert report.settled == 2 and report.cases_opened == 5
    assert report.classes[Kind.AMOUNT].at_stake_minor == 2_000 - 1_100
    assert report.at_stake_minor == (2_000 - 1_100) + 1_200 + 1_300 + 1_400 + 7_500
    assert (report.ours, report.pulled) == (8, 8)  # the dropped one is gone, the phantom is in

    async def state(topup_id: str) -> str:
        view = await case_views.of_topup(rig.core, topup_id)
        assert view is not None
        return f"{view.reason}/{view.state}/{view.resolution}/{view.topup_state}"

    assert await state(amount) == "recon_amount/open/None/delivered"
    assert await state(reversed_) == "recon_status/open/None/delivered"
    assert await state(failed) == "recon_status/open/None/failed"
    assert await state(dropped) == "recon_missing/open/None/delivered"
    assert await state(resolved) == "unknown_outcome/resolved/delivered/delivered"
    assert await state(refunded) == "unknown_outcome/resolved/failed/failed"
    assert await state(pending) == "unknown_outcome/open/None/escalated"
    assert await case_views.of_topup(rig.core, matched) is None
    async with rig.core.sessions() as session:
        [phantom] = (
            await session.execute(select(SupportCase).where(SupportCase.reference.is_not(None)))
        ).scalars()
    assert (
        phantom.reason == "recon_unknown"
        and phantom.evidence["recon"]["theirs"]["amount_minor"] == 7_500
    )
    evidence = json.dumps([(await case_views.of_topup(rig.core, amount)).evidence])  # type: ignore[union-attr]
    assert "0712345" not in evidence and "+254" not in evidence  # no number in evidence
    await assert_ledger_ok(rig.core)

    before = await _snapshot(rig)
    again = await reconcile(rig.core, rig.core.provider, day=day, outbox=Sent())
    assert again.cases_opened == 0 and again.settled == 0
    assert again.classes[Kind.MATCHED].count == 3  # the two settled now match
    assert await _snapshot(rig) == before


async def test_a_day_without_transactions_is_all_zero(rig: Rig) -> None:
    from datetime import date

    report = await reconcile(rig.core, rig.core.provider, day=date(2020, 1, 1), outbox=Sent())
    assert report.pulled == report.ours == report.cases_opened == 0
    assert all(t.count == 0 for t in report.classes.values())
    money = report.as_json()["money"]
    assert (money["charged_minor"], money["credits_minor"], money["at_stake_minor"]) == (
        None,
        None,
        0,
    )


async def test_two_workers_reconcile_a_day_once_under_a_lease(rig_no_worker: Rig) -> None:
    from datetime import timedelta

    from core.services.recon_job import BackOffice, lease_key

    rig = rig_no_worker
    zone = ZoneInfo(rig.settings.timezone)
    offices = [BackOffice(core=rig.core, redis=rig.queue.redis, outbox=Sent()) for _ in range(2)]
    today = datetime.now(zone).replace(hour=rig.settings.reconcile_hour, minute=1)
    early = today - timedelta(hours=1)
    assert [await office.tick(early) for office in offices] == [0, 0]
    started = await asyncio.gather(*(office.tick(today) for office in offices))
    assert sorted(started) == [0, 1]  # one account, reconciled by one of the two
    [running] = [task for o in offices for task in o.running.values()]
    await running
    key = lease_key(rig.core.provider.name, (today - timedelta(days=1)).date().isoformat())
    assert await rig.queue.redis.get(key) == b"done"
    assert [await office.tick(today) for office in offices] == [0, 0]  # done for the day
    for office in offices:
        await office.close()
