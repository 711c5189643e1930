"""The DT One face's memory and shapes: its products (the same Kenyan operators as the Reloadly
face, under DT One's own ids), its transactions and how each one's status moves.

A transaction's statuses are a path fixed when it is created (by the shared last-digit rules,
sandbox/rules.py) and read lazily: its status is the last step whose time has come. Nothing runs in
the background, so there is nothing to cancel. Invariant: one transaction per ``external_id``,
ever; a second create with it is refused (400, code 1007001), as DT One does.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from aiohttp import web

from core.money import discounted_price
from sandbox import operators
from sandbox.config import SandboxConfig
from sandbox.rules import Outcome
from sandbox.wire import major, now

COUNTRY = {"name": "Kenya", "iso_code": "KEN", "regions": None}
SOURCE_CURRENCY = "KES"  # the account's currency: no FX in the sandbox
CLASS_IDS = {  # only 70000 (COMPLETED) is seen in a DT One artifact; the rest are the sandbox's
    "CREATED": 1, "CONFIRMED": 2, "REJECTED": 3, "CANCELLED": 4, "SUBMITTED": 5,
    "COMPLETED": 7, "REVERSED": 8, "DECLINED": 9,
}  # fmt: skip
DECLINED = "DECLINED-OPERATOR-CURRENTLY-UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class Product:
    product_id: int
    operator_id: int
    operator_name: str
    carrier: str
    bundle: bool
    min_minor: int | None = None  # ranged
    max_minor: int | None = None
    amount_minor: int | None = None  # fixed

    @property
    def ranged(self) -> bool:
        return self.amount_minor is None

    def accepts(self, amount_minor: int) -> bool:
        if self.amount_minor is not None:
            return amount_minor == self.amount_minor
        assert self.min_minor is not None and self.max_minor is not None
        return self.min_minor <= amount_minor <= self.max_minor

    def operator_json(self) -> dict[str, Any]:
        return {"id": self.operator_id, "name": self.operator_name, "country": COUNTRY} | {
            "regions": None
        }

    def to_json(self) -> dict[str, Any]:
        """A product as the spec's ProductRangedValueRecharge / ProductFixedValueRecharge."""
        if self.ranged:
            lo, hi = major(self.min_minor or 0), major(self.max_minor or 0)
            amount: Any = {"min": lo, "max": hi, "increment": 1}
            price: Any = {"min": lo, "max": hi}
        else:
            amount = price = major(self.amount_minor or 0)
        unit = {"unit_type": "CURRENCY", "unit": SOURCE_CURRENCY}
        return {
            "id": self.product_id,
            "name": f"{self.operator_name} {'bundle' if self.bundle else 'airtime'}",
            "description": "AirGate sandbox product",
            "tags": None,
            "service": {"id": 1, "name": "Mobile", "subservice": {"id": 11, "name": "Airtime"}},
            "operator": self.operator_json(),
            "regions": None,
            "type": "RANGED_VALUE_RECHARGE" if self.ranged else "FIXED_VALUE_RECHARGE",
            "validity": None,
            "required_debit_party_identifier_fields": None,
            "required_credit_party_identifier_fields": [["mobile_number"]],
            "required_sender_fields": None,
            "required_beneficiary_fields": None,
            "required_statement_identifier_fields": None,
            "required_additional_identifier_fields": None,
            **({"accepted_calculation_modes": ["DESTINATION_AMOUNT"]} if self.ranged else {}),
            "availability_zones": ["INTERNATIONAL"],
            "source": {**unit, "amount": price},
            "destination": {**unit, "amount": amount},
            "prices": {"wholesale": {**unit, "amount": price, "fee": 0}, "retail": None},
            "rates": {"base": 1, "wholesale": 1, "retail": None},
            "benefits": [] if self.ranged else [self._benefit()],
            "promotions": None,
        }

    def _benefit(self) -> dict[str, Any]:
        """What a fixed product gives: data for a bundle, talk time otherwise."""
        amount = major(self.amount_minor or 0)
        return {
            "type": "DATA" if self.bundle else "TALKTIME",
            "unit_type": "CURRENCY",
            "unit": SOURCE_CURRENCY,
            "amount": {
                "base": amount,
                "promotion_bonus": 0,
                "total_excluding_tax": amount,
                "total_including_tax": amount,
            },
            "additional_information": None,
        }


def _products() -> dict[int, Product]:
    """Airtime: one RANGED product per operator (30001-30003, operators 1401-1403). Bundles: one
    FIXED product per price of the Reloadly face's bundle operator (31101 …)."""
    found: dict[int, Product] = {}
    for op in operators.OPERATORS.values():
        n = op.operator_id % 100
        operator_id, name = 1400 + n, op.name.removesuffix(" Bundles")
        if not op.bundle:
            found[30000 + n] = Product(
                30000 + n, operator_id, name, op.carrier, False, op.min_minor, op.max_minor
            )
            continue
        for i, amount in enumerate(op.fixed_minor):
            product_id = 31000 + n * 100 + i + 1
            found[product_id] = Product(
                product_id, operator_id, name, op.carrier, True, amount_minor=amount
            )
    return found


PRODUCTS = _products()


@dataclass(slots=True, kw_only=True)
class Transaction:
    id: int
    external_id: str
    product: Product
    msisdn: str  # E.164
    amount_minor: int
    cost_minor: int
    at: datetime
    arrived: float  # time.monotonic()
    path: list[tuple[float, str]]  # (seconds after arrival, status message), in order

    def status(self, clock: float | None = None) -> str:
        elapsed = (time.monotonic() if clock is None else clock) - self.arrived
        return [message for after, message in self.path if after <= elapsed][-1]

    def klass(self, clock: float | None = None) -> str:
        return self.status(clock).split("-", 1)[0]

    def to_json(self, status: str | None = None) -> dict[str, Any]:
        """The spec's Transaction, with the fields DT One fills in an answer."""
        status = status or self.status()
        klass = status.split("-", 1)[0]
        unit = {"unit_type": "CURRENCY", "unit": SOURCE_CURRENCY}
        values = {
            "source": {**unit, "amount": major(self.cost_minor)},
            "destination": {**unit, "amount": major(self.amount_minor)},
        }
        product = self.product.to_json()
        return {
            "id": self.id,
            "external_id": self.external_id,
            "creation_date": _iso(self.at),
            "confirmation_expiration_date": _iso(self.at + timedelta(hours=1)),
            "confirmation_date": _iso(self.at),
            "status": {
                "id": CLASS_IDS[klass] * 10_000,
                "message": status,
                "class": {"id": CLASS_IDS[klass], "message": klass},
            },
            "operator_reference": f"SBX{self.id:010d}" if klass == "COMPLETED" else None,
            "pin": None,
            "product": {k: product[k] for k in ("id", "name", "description", "tags")}
            | {k: product[k] for k in ("service", "operator", "regions")}
            | {"type": product["type"]},
            "prices": {
                "wholesale": {**unit, "amount": major(self.cost_minor), "fee": 0},
                "retail": None,
            },
            "rates": {"base": 1, "wholesale": 1, "retail": None},
            "benefits": [],
            "promotions": None,
            "requested_values": values,
            "adjusted_values": values,
            "sender": None,
            "beneficiary": None,
            "debit_party_identifier": None,
            "credit_party_identifier": {"mobile_number": self.msisdn},
        }


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def path(outcome: Outcome, config: SandboxConfig) -> list[tuple[float, str]]:
    """The statuses a transaction goes through for a rule (docs/PROVIDERS.md, "DT One")."""
    if outcome in (Outcome.SUCCEED, Outcome.SLOW):
        return [(0.0, "CONFIRMED"), (0.0, "COMPLETED")]
    if outcome is Outcome.DECLINE:
        return [(0.0, "CONFIRMED"), (0.0, DECLINED)]
    final = "COMPLETED" if outcome is Outcome.HANG_THEN_SUCCEED else DECLINED
    return [(0.0, "CONFIRMED"), (0.0, "SUBMITTED"), (config.settle_s, final)]


@dataclass(slots=True)
class DtOneState:
    config: SandboxConfig
    rng: random.Random = field(init=False)
    by_external_id: dict[str, Transaction] = field(default_factory=dict)
    by_id: dict[int, Transaction] = field(default_factory=dict)
    ordered: list[Transaction] = field(default_factory=list)
    errored_once: set[str] = field(default_factory=set)
    sends: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    _ids: count[int] = field(default_factory=lambda: count(2_237_001))
    # The balance kept as it goes (a create checks it: no pass over every transaction): the cost
    # of those that never end DECLINED, and of those that will, until they do.
    _spent_minor: int = 0
    _voiding: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic time, cost)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)

    def reset(self) -> None:
        """Forget every transaction (ids keep counting: one is never reused)."""
        ids = self._ids
        self.__init__(self.config)  # type: ignore[misc]
        self._ids = ids

    def cost(self, amount_minor: int) -> int:
        return discounted_price(amount_minor, self.config.discount_bps)

    def record(self, *, external_id: str, product: Product, msisdn: str, amount_minor: int,
               outcome: Outcome) -> Transaction:  # fmt: skip
        tx = Transaction(
            id=next(self._ids),
            external_id=external_id,
            product=product,
            msisdn=msisdn,
            amount_minor=amount_minor,
            cost_minor=self.cost(amount_minor),
            at=now(),
            arrived=time.monotonic(),
            path=path(outcome, self.config),
        )
        self.by_external_id[external_id] = tx
        self.by_id[tx.id] = tx
        self.ordered.append(tx)
        final_after, final = tx.path[-1]
        if not final.startswith("DECLINED"):
            self._spent_minor += tx.cost_minor
        elif final_after > 0:  # held until the operator declines it (settle_s: in order)
            self._voiding.append((tx.arrived + final_after, tx.cost_minor))
        return tx

    def balance_minor(self) -> int:
        """Available: the initial float less every transaction not voided (held or captured)."""
        clock = time.monotonic()
        while self._voiding and self._voiding[0][0] <= clock:
            self._voiding.popleft()
        held = sum(cost for _at, cost in self._voiding)
        return self.config.initial_balance_minor - self._spent_minor - held

    def stats(self, reference: str | None = None) -> dict[str, Any]:
        """As the Reloadly face's /sandbox/stats: ``delivered`` counts references COMPLETED."""
        clock = time.monotonic()
        classes = Counter(t.klass(clock) for t in self.ordered)
        stats: dict[str, Any] = {
            "delivered": classes["COMPLETED"],
            "failed": classes["DECLINED"],
            "pending": classes["CONFIRMED"] + classes["SUBMITTED"],
            "requests": self.counts["requests"],
            "duplicates": self.counts["duplicates"],
            "errors_5xx": self.counts["errors_5xx"],
            "double_deliveries": 0,  # one transaction per external_id, ever (refused above)
            "balance": major(self.balance_minor()),
        }
        if reference is not None:
            tx = self.by_external_id.get(reference)
            delivered = tx is not None and tx.klass(clock) == "COMPLETED"
            stats["deliveries_by_reference"] = int(delivered)
            stats["sends_by_reference"] = self.sends.get(reference, 0)
        return stats


DTONE = web.AppKey("dtone", DtOneState)
