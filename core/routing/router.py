"""Which aggregator account a top-up goes to, and what each send tells about the account.

Invariant (docs/PROVIDERS.md, "Routing"): a top-up is offered to a second account only after the
first gave a definite no: refused (ProviderRejected), never sent (NotSent), or its own
"failed" transaction. A send that may have been applied (OutcomeUnknown, a 5xx) leaves the top-up
with that account until the account itself says what became of it; the router never picks another
one for it meanwhile (core/services/delivery.py asks the holder first, and records the account it
sends to before sending).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from core.errors import OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.providers import registry
from core.providers.port import AirtimeProvider, Outcome, ProviderTransaction, TopupOrder
from core.routing.health import Health, Result
from core.setting_routing import ANY_OPERATOR, ProviderAccount
from core.settings import Settings

TRIED_CHARS = 200  # topup.providers_tried's width


class _Held(Protocol):
    provider: str | None
    providers_tried: str | None


class Tried:
    """A top-up's ``providers_tried``: the accounts it left with a definite no, and why
    (``refused``, ``failed``, ``not_sent``, ``no_id``), oldest first; each ``add`` writes through
    to the top-up (its oldest entries dropped past the column's width)."""

    def __init__(self, topup: _Held) -> None:
        self._topup = topup
        items = (item.partition(":") for item in (topup.providers_tried or "").split(",") if item)
        self.entries = [(name, why) for name, _, why in items]

    def add(self, name: str, why: str) -> None:
        self.entries.append((name, why))
        text = ",".join(f"{n}:{w}" for n, w in self.entries)
        while len(text) > TRIED_CHARS:
            text = text.partition(",")[2]
        self._topup.providers_tried = text

    def said_no(self, name: str) -> bool:
        """It refused or failed this reference, or has no id for the operator: asking again would
        get the same answer. (Not sent says nothing: it may take it next time.)"""
        return any(n == name and why != "not_sent" for n, why in self.entries)

    def whys(self) -> set[str]:
        return {why for _, why in self.entries}


@dataclass(frozen=True, slots=True)
class Account:
    """A configured account and the adapter instance that speaks to it."""

    config: ProviderAccount
    provider: AirtimeProvider

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def adapter(self) -> str:
        """The adapter's name: what the catalog keys an operator's ids by."""
        return self.config.adapter


def build_accounts(settings: Settings) -> list[Account]:
    """An adapter per configured account (``close()`` each)."""
    return [
        Account(config, registry.build(settings, account=config)) for config in settings.accounts()
    ]


class Router:
    def __init__(
        self,
        *,
        accounts: list[Account],
        routes: dict[str, list[str]],
        prefer_cheapest: bool,
        health: Health,
        slow_ms: int,
    ) -> None:
        self.accounts = {account.name: account for account in accounts}
        self._first = accounts[0]
        self._routes = routes
        self._prefer_cheapest = prefer_cheapest
        self.health = health
        self._slow_ms = slow_ms

    @classmethod
    def from_settings(cls, settings: Settings, *, health: Health) -> Router:
        return cls(
            accounts=build_accounts(settings),
            routes=settings.routes,
            prefer_cheapest=settings.route_prefer_cheapest,
            health=health,
            slow_ms=settings.route_slow_ms,
        )

    async def close(self) -> None:
        for account in self.accounts.values():
            await account.provider.close()

    @property
    def choosing(self) -> bool:
        """More than one account: a top-up's account must be recorded before it is sent."""
        return len(self.accounts) > 1

    def route(self, operator: str) -> list[Account]:
        """The accounts to try for ``operator``, in order: its route (else ``*``'s, else every
        account as declared), cheapest first when so set, the route's order breaking ties."""
        names = self._routes.get(operator) or self._routes.get(ANY_OPERATOR) or list(self.accounts)
        route = [self.accounts[name] for name in names]
        if self._prefer_cheapest:
            route.sort(key=lambda account: account.config.price_bps)  # stable: ties keep order
        return route

    def holder(self, name: str | None) -> Account | None:
        """The account a top-up is with: the one recorded, or (NULL, a row of before routing) the
        first declared; None if the recorded one is no longer configured."""
        return self._first if name is None else self.accounts.get(name)

    async def admit(self, operator: str, candidates: list[Account]) -> Account | None:
        """The first candidate whose breaker lets a send through now."""
        name = await self.health.admit(operator, [account.name for account in candidates])
        return None if name is None else self.accounts[name]

    async def send(self, account: Account, order: TopupOrder) -> ProviderTransaction:
        """``account``'s ``send_topup``, its result and latency counted in its health."""
        started = time.monotonic()
        result: Result | None = None  # None: cancelled (a job time-out), nothing learnt
        detail = ""
        try:
            txn = await account.provider.send_topup(order)
        except ProviderRejected as exc:
            result, detail = Result.REFUSED, str(exc)
            raise
        except OutcomeUnknown as exc:
            result, detail = Result.UNKNOWN, str(exc)
            raise
        except ProviderUnavailable as exc:
            result, detail = Result.ERROR, str(exc)
            raise
        else:
            failed = txn.outcome is Outcome.FAILED
            result, detail = (Result.REFUSED, txn.message) if failed else (Result.OK, "")
        finally:
            latency_ms = (time.monotonic() - started) * 1000
            if result is Result.OK and latency_ms > self._slow_ms:
                result, detail = Result.SLOW, f"answered in {latency_ms:.0f} ms"
            if result is not None:
                await self.health.record(
                    account=account.name,
                    operator=order.operator,
                    result=result,
                    latency_ms=latency_ms,
                    detail=detail,
                )
        return txn
