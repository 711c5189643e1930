"""What a posting is, before any SQL: accounts named by code, legs, moves, the posting's report.

An operation is 1 to ``MAX_LEGS`` legs under one idempotency key (later legs add ``#n``); a
reservation is one ``reserve`` leg (main → inflight) and resolves by one ``capture`` (→ sold) or
``release`` (→ main) leg. Both ways of writing postings (``core/ledger/generic.py`` on every
database, ``core/ledger/pg_fast.py`` on PostgreSQL's hot path) build and report them with these.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from core.models import AccountKind, ReservationStatus
from core.models.ledger import SYSTEM_KINDS


@dataclass(frozen=True, slots=True)
class AccountRef:
    """Names an account: a party's (party_id set) or the system's (party_id None)."""

    kind: str
    asset: str
    party_id: int | None = None

    @property
    def code(self) -> str:
        owner = "sys" if self.party_id is None else f"p{self.party_id}"
        return f"{owner}:{self.kind}:{self.asset}"

    @property
    def is_system(self) -> bool:
        return self.kind in SYSTEM_KINDS


@dataclass(frozen=True, slots=True)
class Leg:
    """One transfer of an operation: ``amount_minor`` of ``debit``'s asset moves to ``credit``."""

    kind: str
    debit: AccountRef
    credit: AccountRef
    amount_minor: int
    reference: str | None = None
    memo: str | None = None


class Move(NamedTuple):
    """One account's balance just before and just after a posting.

    ``new_minor`` is what the guarded UPDATE returned, and the UPDATE applied ``new - old`` to the
    row it held locked, so ``old_minor`` is the balance this posting itself found: of concurrent
    postings to one account, each sees its own step (docs/ALERTS.md).
    """

    old_minor: int
    new_minor: int

    def fell_below(self, threshold_minor: int) -> bool:
        """This posting took the balance from at or above ``threshold_minor`` to below it."""
        return self.old_minor >= threshold_minor > self.new_minor


@dataclass(frozen=True, slots=True)
class Posting:
    transfer_ids: tuple[int, ...]
    replayed: bool  # True: this key was posted before; nothing changed now
    by_kind: dict[str, int]  # amount posted per transfer kind (the original's, on a replay)
    # The balances this posting moved, per account (empty on a replay: nothing moved now).
    moves: dict[AccountRef, Move] = field(default_factory=dict)

    def amount(self, kind: str) -> int:
        return self.by_kind.get(kind, 0)


def by_kind(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for kind, amount in pairs:
        totals[kind] += amount
    return dict(totals)


class Overdraft(Exception):
    """A guard refused a debit; the services turn it into InsufficientStock/Funds."""

    def __init__(self, account: AccountRef, available_minor: int, needed_minor: int) -> None:
        super().__init__(account.code)
        self.account = account
        self.available_minor = available_minor
        self.needed_minor = needed_minor


MAX_LEGS = 8


def leg_keys(op_key: str, count: int) -> list[str]:
    """The first leg carries the operation's key and names the request; later legs (derived from
    balances at the time, like a cash/credit split) add ``#n``."""
    return [op_key if i == 0 else f"{op_key}#{i}" for i in range(count)]


def checked_legs(op_key: str, legs: Sequence[Leg]) -> list[Leg]:
    """``legs`` without zero amounts; ValueError if they cannot make an operation."""
    legs = [leg for leg in legs if leg.amount_minor]
    if not legs or len(legs) > MAX_LEGS or any(leg.amount_minor < 0 for leg in legs):
        raise ValueError(f"an operation needs 1 to {MAX_LEGS} legs with positive amounts")
    if "#" in op_key:
        raise ValueError("'#' is reserved for the keys of later legs")
    return legs


def reserve_leg(reservation_id: str, party_id: int, asset: str, amount_minor: int) -> Leg:
    main = AccountRef(AccountKind.MAIN, asset, party_id)
    inflight = AccountRef(AccountKind.INFLIGHT, asset, party_id)
    return Leg("reserve", main, inflight, amount_minor, reference=reservation_id)


def resolution(outcome: ReservationStatus) -> tuple[str, AccountKind]:
    """The transfer kind of resolving a reservation with ``outcome``, and the kind of account it
    credits (the debit is always the party's ``inflight``)."""
    if outcome is ReservationStatus.CAPTURED:
        return "capture", AccountKind.SOLD
    return "release", AccountKind.MAIN


def resolution_leg(
    reservation_id: str, outcome: ReservationStatus, party_id: int, asset: str, amount_minor: int
) -> Leg:
    kind, target = resolution(outcome)
    inflight = AccountRef(AccountKind.INFLIGHT, asset, party_id)
    target_ref = AccountRef(target, asset, party_id)
    return Leg(kind, inflight, target_ref, amount_minor, reference=reservation_id)
