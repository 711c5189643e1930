"""What a reconciliation found (core/services/reconcile.py): the classes, and per class the
count, the face value involved and the money at stake."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_

from core.models import Topup
from core.services.recon_money import Money

topup_t = Topup.__table__  # type: ignore[attr-defined]


class Kind(StrEnum):
    MATCHED = "matched"
    RESOLVED = "resolved"
    PENDING = "pending"
    AMOUNT = "amount_mismatch"
    STATUS = "status_mismatch"
    MISSING = "missing_at_aggregator"
    UNKNOWN_TO_US = "unknown_to_us"


MISMATCHES = (Kind.AMOUNT, Kind.STATUS, Kind.MISSING, Kind.UNKNOWN_TO_US)
CASE_REASON = {
    Kind.AMOUNT: "recon_amount",
    Kind.STATUS: "recon_status",
    Kind.MISSING: "recon_missing",
    Kind.UNKNOWN_TO_US: "recon_unknown",
}


@dataclass
class Tally:
    count: int = 0
    amount_minor: int = 0  # the face value involved (ours, or theirs when it is not ours)
    at_stake_minor: int = 0  # what is wrong by (the difference, or the whole amount)


@dataclass
class Report:
    day: date
    provider: str
    start: datetime
    end: datetime
    pulled: int = 0  # the aggregator's rows of the day
    ours: int = 0  # our top-ups of the day
    classes: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in Kind})
    cases_opened: int = 0
    settled: int = 0
    first: bool = True  # the first declared account also holds top-ups from before routing
    money: Money = field(default_factory=Money)  # charges and balance credits (recon_money.py)

    def held(self) -> Any:
        """Our top-ups this account holds (a row from before routing: the first account's)."""
        mine = topup_t.c.provider == self.provider
        return or_(mine, topup_t.c.provider.is_(None)) if self.first else mine

    @property
    def at_stake_minor(self) -> int:
        return sum(self.classes[k].at_stake_minor for k in MISMATCHES)

    def add(self, kind: Kind, amount_minor: int, at_stake_minor: int = 0) -> None:
        tally = self.classes[kind]
        tally.count += 1
        tally.amount_minor += amount_minor
        tally.at_stake_minor += at_stake_minor

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "provider": self.provider,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "pulled": self.pulled,
            "ours": self.ours,
            "classes": {k: vars(v) for k, v in self.classes.items()},
            "cases_opened": self.cases_opened,
            "settled": self.settled,
            "at_stake_minor": self.at_stake_minor,
            "money": self.money.as_json(),
            "money_at_stake_minor": self.money.at_stake_minor,
        }


def day_window(day: date, zone: str) -> tuple[datetime, datetime]:
    """The local day ``day`` as [start, end) instants."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tz)
    return start, datetime.combine(day + timedelta(days=1), time(), tz)
