"""The sandbox's memory: tokens, transactions, the account balance, SMS and the counters.

Invariant: one transaction per customIdentifier, ever. The record is created synchronously (no
``await`` between the lookup and the insert), so concurrent repeats of a reference find it even
while the first request is still being answered; ``deliveries`` counts every change to SUCCESSFUL
per reference, so a double delivery would show as 2 in ``/sandbox/stats?reference=``. Because the
sandbox refuses a repeat, a client that resends blindly still delivers once: ``sends`` counts every
``POST /topups`` per reference (repeats and 5xx answers included), which is what tests read to see
what AirGate itself sent.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import count
from typing import Any

from aiohttp import web

from core.money import discounted_price
from sandbox.config import SandboxConfig
from sandbox.operators import CURRENCY, Operator
from sandbox.wire import format_date, major, now


class Status(StrEnum):
    SUCCESSFUL = "SUCCESSFUL"
    PROCESSING = "PROCESSING"
    FAILED = "FAILED"  # declined: never charged
    REFUNDED = "REFUNDED"  # charged while PROCESSING, then returned


class TokenState(StrEnum):
    VALID = "valid"
    EXPIRED = "TOKEN_EXPIRED"
    INVALID = "INVALID_TOKEN"


@dataclass(slots=True, kw_only=True)
class Transaction:
    transaction_id: int
    reference: str
    status: Status
    operator: Operator
    recipient: str  # E.164
    sender: str | None
    requested_minor: int
    cost_minor: int
    at: datetime
    balance_before_minor: int
    balance_after_minor: int
    operator_transaction_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Reloadly's transaction object; phone numbers as digits without the plus, like it."""
        delivered = self.requested_minor if self.status is Status.SUCCESSFUL else 0
        return {
            "transactionId": self.transaction_id,
            "status": self.status.value,
            "operatorTransactionId": self.operator_transaction_id,
            "customIdentifier": self.reference or None,  # "": added without one
            "recipientPhone": self.recipient.lstrip("+"),
            "recipientEmail": None,
            "senderPhone": self.sender.lstrip("+") if self.sender else None,
            "countryCode": "KE",
            "operatorId": self.operator.operator_id,
            "operatorName": self.operator.name,
            "discount": major(self.requested_minor - self.cost_minor),
            "discountCurrencyCode": CURRENCY,
            "requestedAmount": major(self.requested_minor),
            "requestedAmountCurrencyCode": CURRENCY,
            "deliveredAmount": major(delivered),
            "deliveredAmountCurrencyCode": CURRENCY,
            "transactionDate": format_date(self.at),
            "pinDetail": None,
            "balanceInfo": {
                "oldBalance": major(self.balance_before_minor),
                "newBalance": major(self.balance_after_minor),
                "cost": major(self.cost_minor),
                "currencyCode": CURRENCY,
                "currencyName": "Kenyan Shilling",
                "updatedAt": format_date(self.at),
            },
        }


@dataclass(slots=True, frozen=True)
class SmsRecord:
    message_id: str
    number: str
    message: str
    sender: str
    status_code: int
    status: str
    cost: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "number": self.number,
            "message": self.message,
            "from": self.sender,
            "statusCode": self.status_code,
            "status": self.status,
            "cost": self.cost,
            "date": format_date(self.at),
        }


class Store:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._ids = count(1)  # never reset: a transaction id is never reused
        self.reset()

    def reset(self) -> None:
        """Empty everything (tokens included) and restart the RNG from the seed."""
        if getattr(self, "_timers", None):
            self.close()
        self.rng = random.Random(self.config.seed)
        self.tokens: dict[str, float] = {}  # token → monotonic expiry
        self.by_reference: dict[str, Transaction] = {}
        self.by_id: dict[int, Transaction] = {}
        self.ordered: list[Transaction] = []  # by id, hence by date
        self.errored_once: set[str] = set()
        self.deliveries: Counter[str] = Counter()
        self.sends: Counter[str] = Counter()  # every POST /topups per reference
        self.statuses: Counter[Status] = Counter()
        self.balance_minor = self.config.initial_balance_minor
        self.balance_at = now()
        self.sms: list[SmsRecord] = []
        self.sms_by_number: dict[str, list[SmsRecord]] = {}
        self.counts: Counter[str] = Counter()
        self.outage = False  # every aggregator request answered 503 (POST /sandbox/tamper)
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    # Tokens

    def issue_token(self) -> str:
        self.counts["tokens"] += 1
        if len(self.tokens) > 10_000:  # forget the expired ones now and then
            clock = time.monotonic()
            self.tokens = {t: exp for t, exp in self.tokens.items() if exp > clock}
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.config.token_ttl_s
        return token

    def token_state(self, token: str) -> TokenState:
        expiry = self.tokens.get(token)
        if expiry is None:
            return TokenState.INVALID
        return TokenState.VALID if time.monotonic() < expiry else TokenState.EXPIRED

    # Top-ups

    def cost(self, amount_minor: int) -> int:
        return discounted_price(amount_minor, self.config.discount_bps)

    def record(
        self,
        *,
        reference: str,
        operator: Operator,
        recipient: str,
        sender: str | None,
        amount_minor: int,
        status: Status,
    ) -> Transaction:
        """Create the one transaction of ``reference``; charge it unless it is FAILED."""
        cost = self.cost(amount_minor)
        before = self.balance_minor
        after = before if status is Status.FAILED else before - cost
        tx = Transaction(
            transaction_id=next(self._ids),
            reference=reference,
            status=status,
            operator=operator,
            recipient=recipient,
            sender=sender,
            requested_minor=amount_minor,
            cost_minor=cost,
            at=now(),
            balance_before_minor=before,
            balance_after_minor=after,
        )
        self.by_reference[reference] = tx
        self.by_id[tx.transaction_id] = tx
        self.ordered.append(tx)
        self.balance_minor = after
        self.balance_at = tx.at
        self.statuses[status] += 1
        if status is Status.SUCCESSFUL:
            self._delivered(tx)
        return tx

    def settle_later(self, tx: Transaction, status: Status) -> None:
        loop = asyncio.get_running_loop()
        self._timers[tx.transaction_id] = loop.call_later(
            self.config.settle_s, self.settle, tx, status
        )

    def settle(self, tx: Transaction, status: Status) -> None:
        """PROCESSING → SUCCESSFUL, or → REFUNDED with the cost credited back."""
        self._timers.pop(tx.transaction_id, None)
        if tx.status is not Status.PROCESSING:
            return
        self.statuses[tx.status] -= 1
        self.statuses[status] += 1
        tx.status = status
        if status is Status.SUCCESSFUL:
            self._delivered(tx)
        else:
            self.balance_minor += tx.cost_minor
            self.balance_at = now()

    def _delivered(self, tx: Transaction) -> None:
        self.deliveries[tx.reference] += 1
        if self.deliveries[tx.reference] == 2:  # must never happen; the tests read it
            self.counts["double_deliveries"] += 1
        tx.operator_transaction_id = f"SBX{tx.transaction_id:010d}"

    def between(self, start: datetime | None, end: datetime | None) -> list[Transaction]:
        """Transactions with start <= date <= end (either bound optional), oldest first."""
        txs = self.ordered
        lo = 0 if start is None else bisect_left(txs, start, key=lambda t: t.at)
        hi = len(txs) if end is None else bisect_right(txs, end, key=lambda t: t.at)
        return txs[lo:hi]

    # SMS

    def add_sms(self, record: SmsRecord) -> None:
        self.sms.append(record)
        self.sms_by_number.setdefault(record.number, []).append(record)

    # Inspection

    def stats(self, reference: str | None = None) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "delivered": len(self.deliveries),
            "failed": self.statuses[Status.FAILED] + self.statuses[Status.REFUNDED],
            "pending": self.statuses[Status.PROCESSING],
            "requests": self.counts["requests"],
            "duplicates": self.counts["duplicates"],
            "errors_5xx": self.counts["errors_5xx"],
            "sms": len(self.sms),
            "tokens": self.counts["tokens"],
            "double_deliveries": self.counts["double_deliveries"],
            "balance": major(self.balance_minor),
        }
        if reference is not None:
            stats["deliveries_by_reference"] = self.deliveries.get(reference, 0)
            stats["sends_by_reference"] = self.sends.get(reference, 0)
        return stats


STORE = web.AppKey("store", Store)
