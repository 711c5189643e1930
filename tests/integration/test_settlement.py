"""Settlement over generated months, on SQLite and PostgreSQL: the figures equal sums the test
computes from what it made; a run regenerates byte for byte; the database refuses to edit a run;
a transfer dated in a settled month after its run lands in the next run as a correction."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import text

from core.context import Core
from core.errors import Refused
from core.money import discounted_price
from core.services.audit import Actor
from core.services.settlement import runs
from core.services.settlement.documents import rows
from tests.helpers import ADMIN
from tests.history import (
    RETAIL_BPS,
    Clock,
    History,
    build,
    day_of_trade,
    local,
    patch_clocks,
    sell,
)

COMMISSION_BPS = {"platform": 50, "retail": 100}  # as tests/history.py agrees them


def _owed_by(history: History, seller: int, buyer: int, until: datetime) -> int:
    """Everything the buyer owes the seller for what is dated before ``until``, computed here:
    prices, less deposits and commissions."""
    retail = seller != history.platform_id
    trades = [t for t in history.trades if (t.seller_id, t.buyer_id) == (seller, buyer)]
    owed = sum(t.price_minor - t.face_minor * (
        COMMISSION_BPS["retail" if retail else "platform"]) // 10_000
        for t in trades if t.at < until)  # fmt: skip
    owed -= sum(a for payer, a, at in history.deposits if payer == buyer and at < until)
    return owed  # claw-backs move no money (a refund is a deposit entry of its own)


@pytest.fixture
async def history(core: Core, monkeypatch: pytest.MonkeyPatch) -> tuple[History, Clock]:
    made = await build(core, retailers=2)
    clock = Clock(local(date(2026, 10, 15), 6))
    patch_clocks(monkeypatch, clock)
    await day_of_trade(core, clock, made, date(2026, 10, 15), seed=1, topups_n=8)
    await day_of_trade(core, clock, made, date(2026, 11, 10), seed=2, topups_n=8)
    await day_of_trade(core, clock, made, date(2026, 11, 30), seed=3, topups_n=8)
    return made, clock


async def test_a_month_settles_once_with_the_sums_of_what_happened(
    core: Core, history: tuple[History, Clock]
) -> None:
    made, _ = history
    october = await runs.settle(core, period="2026-10", actor=ADMIN)
    pairs = {(o.seller_id, o.buyer_id): o.run for o in october}
    dist = made.distributor.id or 0
    assert set(pairs) == {(made.platform_id, dist), *((dist, s.id or 0) for s in made.shops)}
    november_start = local(date(2026, 11, 1), 0)
    for (seller, buyer), run in pairs.items():
        assert run is not None
        assert run.amount_due_minor == _owed_by(made, seller, buyer, november_start)
    shop = made.shops[0].id or 0
    shown = await runs.show(core, run_id=pairs[(dist, shop)].id or 0)  # type: ignore[union-attr]
    [face] = [c[3] for c in made.clawbacks if c[1] == shop and c[4] < november_start]
    worth = discounted_price(face, RETAIL_BPS["*"])  # airtel-ke: the all-operators discount
    claw = [row for row in rows(shown.settlement) if row[0] == "claw-back"]
    assert (face, worth) == (1_000, 980)
    assert claw == [["claw-back", "airtel-ke", "10", "9.80", ""]]
    again = await runs.settle(core, period="2026-10", actor=ADMIN)
    assert {o.note for o in again} == {
        f"already settled as run #{r.id}" for r in pairs.values() if r
    }
    before = await runs.settle(core, period="2026-09", actor=ADMIN)
    assert {o.note for o in before} == {"a later month is settled"}
    with pytest.raises(Refused, match="not over yet"):
        await runs.settle(core, period="2026-12", actor=ADMIN)


async def test_a_run_regenerates_byte_for_byte_and_cannot_be_edited(
    core: Core, history: tuple[History, Clock]
) -> None:
    made, _ = history
    [first, *_] = [o.run for o in await runs.settle(core, period="2026-10", actor=ADMIN) if o.run]
    shown = await runs.show(core, run_id=first.id or 0)
    assert shown.verified
    again = await runs.show(core, run_id=first.id or 0)
    assert (again.csv, again.pdf) == (shown.csv, shown.pdf)
    assert shown.pdf.startswith(b"%PDF-") and len(shown.pdf) > 1_000
    assert b"CreationDate (D:20261101" in shown.pdf  # the period's end, not the clock
    assert shown.csv.decode().splitlines()[-1].startswith("amount due,")
    for statement in (
        "UPDATE settlement_run SET amount_due_minor = 0",
        "DELETE FROM settlement_run",
    ):
        with pytest.raises(Exception, match="immutable"):
            async with core.transaction() as session:
                await session.execute(text(statement))
    assert (await runs.show(core, run_id=first.id or 0)).verified


async def test_a_late_entry_in_a_settled_month_is_a_correction_in_the_next_run(
    core: Core, history: tuple[History, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    made, clock = history
    october = {o.buyer_id: o.run for o in await runs.settle(core, period="2026-10", actor=ADMIN)}
    shop = made.shops[0]
    # Written now, dated in October (a clock that was wrong, a transaction across the run).
    clock.now = local(date(2026, 10, 31), 23, 50)
    await sell(core, made, made.distributor, shop, "safaricom-ke", 100_000, clock.now)
    run = october[shop.id or 0]
    assert run is not None
    assert (await runs.show(core, run_id=run.id or 0)).verified  # October is unchanged
    november = {o.buyer_id: o.run for o in await runs.settle(core, period="2026-11", actor=ADMIN)}
    later = november[shop.id or 0]
    assert later is not None and later.previous_id == run.id
    december_start = local(date(2026, 12, 1), 0)
    assert later.amount_due_minor == _owed_by(made, made.distributor.id or 0, shop.id or 0,
                                              december_start)  # fmt: skip
    shown = await runs.show(core, run_id=later.id or 0)
    corrections = [row for row in rows(shown.settlement) if row[0] == "correction"]
    assert corrections and all(f"corrects 2026-10 (run #{run.id})" in r[4] for r in corrections)
    assert shown.verified
    other = november[made.shops[1].id or 0]
    assert other is not None
    assert not [r for r in rows((await runs.show(core, run_id=other.id or 0)).settlement)
                if r[0] == "correction"]  # fmt: skip
    assert Actor.cli().label == later.created_by
