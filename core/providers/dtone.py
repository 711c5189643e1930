"""``DtOneProvider``: the :class:`~core.providers.port.AirtimeProvider` over DT One's DVS API v1
(``airgate sandbox`` speaks it under ``/v1`` too). See docs/PROVIDERS.md, "DT One".

A send is ``POST /async/transactions`` with ``auto_confirm`` and our reference as ``external_id``
(DT One refuses a second transaction with the same one: error 1007001). The answer is usually
``CONFIRMED``; the adapter then reads ``GET /transactions/{id}`` for up to ``settle_s`` and
returns what it saw: a final status, or a pending one (an UNKNOWN outcome the worker looks up
later with :meth:`find`, by ``external_id``).

Invariant: a send that may have reached DT One is never reported as failed. A request that never
left (connection refused, connect time-out, bad URL) or that DT One refused before processing it
(401, 429) is :class:`NotSent`, the one unavailability routing may try another account after; one
that may have left and got no readable answer is OutcomeUnknown.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp

from core.errors import NotSent, OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.providers import dtone_wire as wire
from core.providers.http import RETRY_LATER, translated
from core.providers.port import (
    Outcome,
    ProviderBalance,
    ProviderOperator,
    ProviderTransaction,
    TopupOrder,
)

if TYPE_CHECKING:  # a type only: the settings import the adapter registry
    from core.settings import Settings

PROVIDER = "dtone"
# An operator_ref of this form names a DT One operator whose FIXED product of the order's amount
# is the one to send (bundles: one product per denomination); a bare number is a RANGED product.
BY_OPERATOR = "operator:"
EXTERNAL_ID_USED = "1007001"
NOT_FOUND = "1008004"
# GET /transactions accepts at most a day between from_date and to_date, 100 items a page.
WINDOW = timedelta(hours=24)
PAGE_SIZE = 100
POLL_INTERVAL_S = 0.2


def _translated(what: str, *, may_apply: bool) -> AbstractContextManager[None]:
    return translated(PROVIDER, what, may_apply=may_apply, malformed=wire.Malformed)


def _rejected(order: TopupOrder, why: str) -> ProviderRejected:
    detail = f"operator {order.operator}: {why}"
    return ProviderRejected(provider=PROVIDER, detail=detail, error_code="BAD_PRODUCT")


class DtOneProvider:
    """Owns its ClientSession unless one is given; ``close()`` it. One instance per DT One
    account: the constructor takes the account's URL, key and secret explicitly."""

    name = PROVIDER

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        api_secret: str,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        max_connections: int = 256,
        settle_s: float = 1.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base = str(base_url).rstrip("/")
        self._authorization = aiohttp.encode_basic_auth(api_key, api_secret)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._max_connections = max_connections
        self._settle_s = settle_s
        self._session = session
        self._owns_session = session is None
        self._fixed: dict[str, dict[int, int]] = {}  # operator id → {amount_minor: product id}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session: aiohttp.ClientSession | None = None
    ) -> DtOneProvider:
        return cls(
            base_url=str(settings.dtone_url),
            api_key=settings.dtone_api_key.get_secret_value(),
            api_secret=settings.dtone_api_secret.get_secret_value(),
            timeout_s=settings.provider_timeout_s,
            connect_timeout_s=settings.provider_connect_timeout_s,
            max_connections=settings.provider_max_connections,
            settle_s=settings.dtone_settle_s,
            session=session,
        )

    def __repr__(self) -> str:  # never the key or the secret
        return f"DtOneProvider(base_url={self._base!r})"

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # The port

    async def send_topup(self, order: TopupOrder) -> ProviderTransaction:
        payload: dict[str, Any] = {
            "external_id": order.reference,
            "auto_confirm": True,
            "credit_party_identifier": {"mobile_number": order.msisdn},
        }
        if order.operator_ref.startswith(BY_OPERATOR):
            payload["product_id"] = await self._fixed_product(order)
        else:
            payload["product_id"] = self._ranged_product(order)
            payload["calculation_mode"] = "DESTINATION_AMOUNT"
            payload["destination"] = {
                "unit_type": "CURRENCY",
                "unit": order.currency,
                "amount": wire.major(order.amount_minor),
            }
        if order.sender_msisdn:
            payload["sender"] = {"mobile_number": order.sender_msisdn}
        status, raw, _ = await self._call("POST", "/async/transactions", body=payload)
        if 200 <= status < 300:
            with _translated("send", may_apply=True):
                tx = wire.transaction(wire.parse_json(raw))
                if tx.reference is None:  # the answer to our own POST: ours
                    tx = replace(tx, reference=order.reference)
                if tx.reference != order.reference:
                    raise wire.Malformed(f"answer for {tx.reference!r}, not {order.reference!r}")
            return await self._settled(tx)
        code, message = wire.error_fields(raw)
        if status == 400 and code == EXTERNAL_ID_USED:
            return await self._original(order.reference)
        raise _refusal(status, code, message, may_apply=True)

    async def find(self, *, reference: str, since: datetime) -> ProviderTransaction | None:
        """By ``external_id`` (DT One searches all dates for it; ``since`` is not needed)."""
        found, _pages = await self._list({"external_id": reference})
        mine = [tx for tx in found if tx.reference == reference]
        mine.sort(key=lambda tx: tx.outcome is not Outcome.DELIVERED)
        return mine[0] if mine else None

    async def transactions(
        self, *, start: datetime, end: datetime
    ) -> AsyncIterator[ProviderTransaction]:
        start, end = wire.utc(start), wire.utc(end)
        window = start
        while window < end:
            window_end = min(window + WINDOW, end)
            page, pages = 1, 1
            while page <= pages:
                params = {"from_date": wire.date(window), "to_date": wire.date(window_end)}
                params |= {"page": str(page), "per_page": str(PAGE_SIZE)}
                found, pages = await self._list(params)
                for tx in found:  # both bounds are inclusive at DT One: keep [window, end)
                    if window <= tx.at < window_end:
                        yield tx
                page += 1
            window = window_end

    async def balance(self) -> ProviderBalance:
        body = await self._read("/balances")
        with _translated("balance", may_apply=False):
            for item in body if isinstance(body, list) else ():
                if isinstance(item, dict) and item.get("unit_type") == "CURRENCY":
                    try:
                        return ProviderBalance(
                            balance_minor=wire.minor(item["available"]),
                            currency=str(item["unit"]),
                        )
                    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                        raise wire.Malformed(f"balance: {exc!r}") from exc
            raise wire.Malformed("balance: no CURRENCY balance")

    async def detect_operator(self, *, msisdn: str, country: str) -> ProviderOperator:
        """The identified operator's ranged airtime product (its ``ref`` is the product id)."""
        found = await self._read(f"/lookup/mobile-number/{msisdn}")
        with _translated("detect", may_apply=False):
            if not isinstance(found, list):
                raise wire.Malformed("lookup: not a list")
            ids = [o["id"] for o in found if isinstance(o, dict) and o.get("identified")]
        if not ids:
            raise ProviderRejected(provider=PROVIDER, detail="no operator identified")
        params = {"operator_id": str(ids[0]), "type": wire.RANGED_AIRTIME}
        products = await self._products(params)
        airtime = [p for p in products if not p.bundle]
        if not airtime:
            raise ProviderRejected(provider=PROVIDER, detail=f"no airtime product at {ids[0]}")
        return airtime[0]

    async def operators(self, *, country: str) -> list[ProviderOperator]:
        """Every product in ``country``, as the catalog names them (by product id)."""
        alpha3 = wire.ALPHA3.get(country.upper(), country.upper())
        return await self._products({"country_iso_code": alpha3})

    # Products

    def _ranged_product(self, order: TopupOrder) -> int:
        try:
            return int(order.operator_ref)
        except ValueError:
            raise _rejected(order, f"{order.operator_ref!r} is not a DT One product id") from None

    async def _fixed_product(self, order: TopupOrder) -> int:
        """The operator's FIXED product of exactly the order's amount (the list is cached, and
        read again once when a price is not in it: DT One may have added the product since)."""
        operator_id = order.operator_ref.removeprefix(BY_OPERATOR)
        if not operator_id.isdigit():
            raise _rejected(order, f"{order.operator_ref!r} is not operator:<DT One id>")
        cached = self._fixed.get(operator_id, {})
        if order.amount_minor not in cached:
            params = {"operator_id": operator_id, "type": wire.FIXED_AIRTIME}
            try:
                products = await self._products(params)
            except ProviderUnavailable as exc:  # the top-up itself never left
                if isinstance(exc, NotSent):
                    raise
                raise NotSent(provider=PROVIDER, detail=f"not sent, products: {exc}") from exc
            self._fixed[operator_id] = {
                amount: int(p.ref) for p in products for amount in p.fixed_amounts_minor
            }
        product_id = self._fixed[operator_id].get(order.amount_minor)
        if product_id is None:
            raise _rejected(order, f"no fixed product of {order.amount_minor} at {operator_id}")
        return product_id

    async def _products(self, params: dict[str, str]) -> list[ProviderOperator]:
        found: list[ProviderOperator] = []
        page, pages = 1, 1
        while page <= pages:
            query = params | {"page": str(page), "per_page": str(PAGE_SIZE)}
            status, raw, headers = await self._call("GET", "/products", params=query)
            if status != 200:
                raise _refusal(status, *wire.error_fields(raw), may_apply=False)
            with _translated("products", may_apply=False):
                body = wire.parse_json(raw)
                if not isinstance(body, list):
                    raise wire.Malformed("products: not a list")
                found += [wire.product(item) for item in body]
            pages = _total_pages(headers, bool(body))
            page += 1
        return found

    # HTTP

    async def _settled(self, tx: ProviderTransaction) -> ProviderTransaction:
        """Read a pending transaction again (at once, then every POLL_INTERVAL_S) until it is
        final or ``settle_s`` has passed; a failed read leaves it pending (the worker looks it up
        later)."""
        deadline = time.monotonic() + self._settle_s
        pause = 0.0  # an operator often answers while the POST's answer travels back
        while tx.outcome is Outcome.UNKNOWN and time.monotonic() < deadline:
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = POLL_INTERVAL_S
            try:
                body = await self._read(f"/transactions/{tx.provider_ref}")
                with _translated("status", may_apply=False):
                    tx = replace(wire.transaction(body), reference=tx.reference)
            except (ProviderUnavailable, ProviderRejected):
                break
        return tx

    async def _original(self, reference: str) -> ProviderTransaction:
        """Resolve "external ID already used": the original is the answer; not finding it is
        unknown."""
        try:
            tx = await self.find(reference=reference, since=datetime.now(UTC))
        except ProviderUnavailable as exc:
            detail = f"duplicate, lookup failed: {exc}"
            raise OutcomeUnknown(provider=PROVIDER, detail=detail) from exc
        if tx is None:
            raise OutcomeUnknown(provider=PROVIDER, detail="duplicate, but not found")
        return tx

    async def _list(self, params: dict[str, str]) -> tuple[list[ProviderTransaction], int]:
        """One page of ``GET /transactions`` and the page count; "not found" is an empty page.
        Any other failure, a 4xx included, is ProviderUnavailable: a lookup that did not work
        says nothing about the top-up."""
        status, raw, headers = await self._call("GET", "/transactions", params=params)
        if status == 404 and wire.error_fields(raw)[0] == NOT_FOUND:
            return [], 0
        if status != 200:
            code, message = wire.error_fields(raw)
            detail = f"transactions: HTTP {status} {code} {message}".strip()
            raise ProviderUnavailable(provider=PROVIDER, detail=detail)
        with _translated("transactions", may_apply=False):
            body = wire.parse_json(raw)
            if not isinstance(body, list):
                raise wire.Malformed("transactions: not a list")
            found = [wire.transaction(item) for item in body]
        return found, _total_pages(headers, bool(found))

    async def _read(self, path: str) -> Any:
        status, raw, _ = await self._call("GET", path)
        if status != 200:
            raise _refusal(status, *wire.error_fields(raw), may_apply=False)
        with _translated(path, may_apply=False):
            return wire.parse_json(raw)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Authorization": self._authorization}
        if data is not None:
            headers["Content-Type"] = "application/json"
        with _translated(f"{method} {path}", may_apply=method == "POST"):
            async with self._http().request(
                method,
                self._base + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                return resp.status, await resp.read(), dict(resp.headers)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections)
            )
            self._owns_session = True
        return self._session


def _total_pages(headers: dict[str, str], any_found: bool) -> int:
    """``X-Total-Pages``; without it, the one page there was."""
    text = headers.get("X-Total-Pages", "")
    return int(text) if text.isdigit() else int(any_found)


def _refusal(
    status: int, code: str, message: str, *, may_apply: bool
) -> ProviderRejected | ProviderUnavailable | OutcomeUnknown:
    """A non-2xx answer as our error. 401 and "ask again later" (408/425/429) are answered before
    anything is processed: NotSent. Other 4xx are a definitive no; 5xx is unavailable (it may
    have been half-processed: our external_id makes the resend, after a lookup, safe)."""
    detail = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status == 401:
        return NotSent(provider=PROVIDER, detail=f"not sent, credentials refused {code}".strip())
    if status in RETRY_LATER:
        return NotSent(provider=PROVIDER, detail=f"not sent, {detail} {code}".strip())
    if 400 <= status < 500:
        return ProviderRejected(provider=PROVIDER, detail=detail, error_code=code)
    if status >= 500 or not may_apply:
        return ProviderUnavailable(provider=PROVIDER, detail=f"{detail} {code}".strip())
    return OutcomeUnknown(provider=PROVIDER, detail=f"unexpected {detail}")  # 1xx/3xx
