"""The money line of a reconciliation (core/services/reconcile.py): what the aggregator charged the
account for the day against our delivered top-ups there at the account's price (``price_bps``),
and the credits its balance chain shows against our stock intake of the day.

The charges are summed as the report is staged (rows the aggregator dates within the day, and
delivered); the balance chain keeps three numbers a row of the day that carries one (Reloadly's
``balanceInfo``), sorted by time: a row's ``oldBalance`` above the one before's ``newBalance`` is
money put into the account between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core.context import Core
from core.models import AuditEvent, Topup, TopupState
from core.providers.port import Outcome, ProviderTransaction
from core.setting_routing import FACE_VALUE_BPS

topup_t = Topup.__table__  # type: ignore[attr-defined]
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]


@dataclass
class Money:
    charged_minor: int = 0  # the aggregator's charges for the day's delivered rows
    charged_rows: int = 0  # rows that said what they cost
    uncharged_rows: int = 0  # delivered rows that did not
    priced_minor: int = 0  # our delivered top-ups there, each at price_bps of its face value
    delivered: int = 0
    price_bps: int = FACE_VALUE_BPS
    credits_minor: int | None = None  # gaps up in the balance chain; None: no chain given
    debits_minor: int = 0  # gaps down: taken from the account outside the report
    intake_minor: int = 0  # our stock intake recorded that day (all operators)
    chain: list[tuple[datetime, str, int, int]] = field(default_factory=list, repr=False)

    def add(self, tx: ProviderTransaction) -> None:
        """One row of the day's report."""
        if tx.outcome is Outcome.DELIVERED:
            if tx.charged_minor is None:
                self.uncharged_rows += 1
            else:
                self.charged_rows += 1
                self.charged_minor += tx.charged_minor
        if tx.balance_before_minor is not None and tx.balance_after_minor is not None:
            self.chain.append(
                (tx.at, tx.provider_ref or "", tx.balance_before_minor, tx.balance_after_minor)
            )

    def close_chain(self) -> None:
        if not self.chain:
            return
        self.chain.sort(key=lambda row: (row[0], len(row[1]), row[1]))
        self.credits_minor = 0
        for (_, _, _, after), (_, _, before, _) in zip(self.chain, self.chain[1:], strict=False):
            gap = before - after
            if gap > 0:
                self.credits_minor += gap
            else:
                self.debits_minor -= gap
        self.chain = []

    @property
    def tolerance_minor(self) -> int:
        """Rounding: each side rounds each row to the minor unit."""
        return max(self.charged_rows, self.delivered)

    @property
    def difference_minor(self) -> int:
        """What the aggregator charged beyond our price (negative: less)."""
        return self.charged_minor - self.priced_minor if self.charged_rows else 0

    @property
    def at_stake_minor(self) -> int:
        diff = abs(self.difference_minor)
        return diff if diff > self.tolerance_minor else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "charged_minor": self.charged_minor if self.charged_rows else None,
            "charged_rows": self.charged_rows,
            "uncharged_rows": self.uncharged_rows,
            "priced_minor": self.priced_minor,
            "delivered": self.delivered,
            "price_bps": self.price_bps,
            "difference_minor": self.difference_minor,
            "at_stake_minor": self.at_stake_minor,
            "credits_minor": self.credits_minor,
            "debits_minor": self.debits_minor,
            "intake_minor": self.intake_minor,
        }


async def ours(
    core: Core, money: Money, *, held: Any, start: datetime, end: datetime, price_bps: int
) -> None:
    """Our delivered top-ups of the day at the account, priced; our stock intake of the day."""
    money.price_bps = price_bps
    # Each top-up rounded half up to the minor unit, as the aggregator rounds each row.
    priced = (topup_t.c.amount_minor * price_bps + FACE_VALUE_BPS // 2) // FACE_VALUE_BPS
    delivered = select(func.count(), func.coalesce(func.sum(priced), 0)).where(
        topup_t.c.created_at >= start,
        topup_t.c.created_at < end,
        topup_t.c.state == TopupState.DELIVERED,
        held,
    )
    intakes = select(audit_t.c.details).where(
        audit_t.c.action == "stock.intake", audit_t.c.at >= start, audit_t.c.at < end
    )
    async with core.sessions() as session:
        count, total = (await session.execute(delivered)).one()
        details = (await session.execute(intakes)).scalars().all()
    money.delivered, money.priced_minor = int(count), int(total)
    money.intake_minor = sum(int(d.get("amount_minor", 0)) for d in details)


def price_bps(core: Core, account: str) -> int:
    for config in core.settings.accounts():
        if config.name == account:
            return config.price_bps
    return FACE_VALUE_BPS
