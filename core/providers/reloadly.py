"""``ReloadlyProvider``: the :class:`~core.providers.port.AirtimeProvider` over the aggregator's
HTTP API (Reloadly Airtime shape; ``airgate sandbox`` speaks it too). See docs/PROVIDERS.md.

Invariant: a send that may have reached the aggregator is never reported as failed. Only a
definitive answer (a FAILED/REFUNDED transaction, a 4xx refusal) is; a time-out or a broken answer
after the request left is :class:`OutcomeUnknown`, resolved later with :meth:`find` by our
reference (``customIdentifier``). aiohttp's errors become ours in one place, :func:`_translated`.
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
from core.providers import reloadly_wire as wire
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

PROVIDER = "reloadly"
ACCEPT = "application/com.reloadly.topups-v1+json"
# Renew a token this long before it expires: 10 % of its life, at most a minute.
RENEW_MARGIN_MAX_S = 60.0
RENEW_MARGIN_SHARE = 0.1
# A duplicate refusal does not say when the original was sent; look back this far for it.
DUPLICATE_LOOKBACK = timedelta(days=7)
# find() asks up to a day ahead, so the aggregator's clock running ahead of ours cannot hide it.
CLOCK_SLACK = timedelta(days=1)
REPORT_PAGE_SIZE = 200  # the report's largest page: fewest round trips


def _translated(what: str, *, may_apply: bool) -> AbstractContextManager[None]:
    return translated(PROVIDER, what, may_apply=may_apply, malformed=wire.Malformed)


def _operator_id(order: TopupOrder) -> int:
    """Reloadly's operator ids are integers; the catalog keeps every aggregator's id as text."""
    try:
        return int(order.operator_ref)
    except ValueError:
        detail = f"operator {order.operator}: {order.operator_ref!r} is not a Reloadly id"
        code = "BAD_OPERATOR"
        raise ProviderRejected(provider=PROVIDER, detail=detail, error_code=code) from None


class ReloadlyProvider:
    """Owns its ClientSession (one connection pool) unless one is given; ``close()`` it."""

    name = PROVIDER

    def __init__(
        self,
        *,
        base_url: str,
        auth_url: str,
        client_id: str,
        client_secret: str,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        max_connections: int = 256,
        report_page_size: int = REPORT_PAGE_SIZE,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._auth_url = auth_url.rstrip("/") + "/oauth/token"
        self._credentials = {
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "client_credentials",
            "audience": self._base,
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._max_connections = max_connections
        self._page_size = str(report_page_size)
        self._session = session
        self._owns_session = session is None
        self._token = ""
        self._renew_at = 0.0  # time.monotonic()
        self._token_lock = asyncio.Lock()  # one renewal in flight, shared by every caller

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session: aiohttp.ClientSession | None = None
    ) -> ReloadlyProvider:
        return cls(
            base_url=settings.provider_url,
            auth_url=settings.provider_auth_url,
            client_id=settings.provider_client_id,
            client_secret=settings.provider_client_secret.get_secret_value(),
            timeout_s=settings.provider_timeout_s,
            connect_timeout_s=settings.provider_connect_timeout_s,
            max_connections=settings.provider_max_connections,
            session=session,
        )

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # The port

    async def send_topup(self, order: TopupOrder) -> ProviderTransaction:
        payload: dict[str, Any] = {
            "operatorId": _operator_id(order),
            "amount": wire.major(order.amount_minor),
            "useLocalAmount": True,
            "customIdentifier": order.reference,
            "recipientPhone": {"countryCode": order.country, "number": order.msisdn},
        }
        if order.sender_msisdn:
            payload["senderPhone"] = {
                "countryCode": wire.region(order.sender_msisdn, order.country),
                "number": order.sender_msisdn,
            }
        status, raw = await self._call("POST", "/topups", body=payload, may_apply=True)
        if 200 <= status < 300:
            with _translated("send", may_apply=True):
                tx = wire.transaction(wire.parse_json(raw))
                if tx.reference is None:  # the answer to our own POST: ours (docs/PROVIDERS.md)
                    tx = replace(tx, reference=order.reference)
                if tx.reference != order.reference:
                    raise wire.Malformed(f"answer for {tx.reference!r}, not {order.reference!r}")
            return tx
        code, message = wire.error_fields(raw)
        if 400 <= status < 500 and "DUPLICATE" in code.upper():
            return await self._original(order.reference)
        raise self._refusal(status, code, message, may_apply=True)

    async def find(self, *, reference: str, since: datetime) -> ProviderTransaction | None:
        end = datetime.now(UTC) + CLOCK_SLACK
        found, _pages = await self._report(start=since, end=end, page=1, reference=reference)
        mine = [tx for tx in found if tx.reference == reference]
        # Reloadly refuses a repeated reference, so there is at most one; prefer a delivery anyway.
        mine.sort(key=lambda tx: tx.outcome is not Outcome.DELIVERED)
        return mine[0] if mine else None

    async def transactions(
        self, *, start: datetime, end: datetime
    ) -> AsyncIterator[ProviderTransaction]:
        start, end = wire.utc(start), wire.utc(end)
        page, total_pages = 1, 1
        while page <= total_pages:
            # The report's endDate is inclusive to the second; [start, end) is kept here.
            found, total_pages = await self._report(start=start, end=end, page=page)
            for tx in found:
                if start <= tx.at < end:
                    yield tx
            page += 1

    async def balance(self) -> ProviderBalance:
        body = await self._read("/accounts/balance")
        with _translated("balance", may_apply=False):
            try:
                return ProviderBalance(
                    balance_minor=wire.minor(body["balance"]), currency=str(body["currencyCode"])
                )
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                raise wire.Malformed(f"balance: {exc!r}") from exc

    async def detect_operator(self, *, msisdn: str, country: str) -> ProviderOperator:
        path = f"/operators/auto-detect/phone/{msisdn.lstrip('+')}/countries/{country}"
        body = await self._read(path, params={"suggestedAmountsMap": "false"})
        with _translated("detect", may_apply=False):
            return wire.operator(body)

    async def operators(self, *, country: str) -> list[ProviderOperator]:
        params = {"includeBundles": "true", "includeData": "true", "suggestedAmountsMap": "false"}
        body = await self._read(f"/operators/countries/{country}", params=params)
        with _translated("operators", may_apply=False):
            if not isinstance(body, list):
                raise wire.Malformed("operators: not a list")
            return [wire.operator(item) for item in body]

    # HTTP

    async def _original(self, reference: str) -> ProviderTransaction:
        """Resolve a duplicate refusal: the original is the answer; not finding it is unknown."""
        try:
            tx = await self.find(reference=reference, since=datetime.now(UTC) - DUPLICATE_LOOKBACK)
        except ProviderUnavailable as exc:
            detail = f"duplicate, lookup failed: {exc}"
            raise OutcomeUnknown(provider=PROVIDER, detail=detail) from exc
        if tx is None:
            raise OutcomeUnknown(provider=PROVIDER, detail="duplicate, but not in the report")
        return tx

    async def _report(
        self, *, start: datetime, end: datetime, page: int, reference: str | None = None
    ) -> tuple[list[ProviderTransaction], int]:
        """One page of the transactions report and the page count. Any failure, a 4xx included,
        is ProviderUnavailable: a lookup that did not work says nothing about the top-up."""
        params = {"startDate": wire.date(start), "endDate": wire.date(end), "page": str(page)}
        params["size"] = self._page_size
        if reference is not None:
            params["customIdentifier"] = reference
        try:
            body = await self._read("/topups/reports/transactions", params=params)
        except ProviderRejected as exc:
            raise ProviderUnavailable(provider=PROVIDER, detail=f"report: {exc}") from exc
        with _translated("report", may_apply=False):
            found = [wire.transaction(item) for item in wire.content(body)]
            return found, int(body.get("totalPages", 0)) if found else 0

    async def _read(self, path: str, *, params: dict[str, str] | None = None) -> Any:
        status, raw = await self._call("GET", path, params=params, may_apply=False)
        if status != 200:
            raise self._refusal(status, *wire.error_fields(raw), may_apply=False)
        with _translated(path, may_apply=False):
            return wire.parse_json(raw)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        may_apply: bool,
    ) -> tuple[int, bytes]:
        """One request with a valid token; on a 401, renew once and send once more (a 401 is
        answered before anything is processed, so the second send cannot double a top-up)."""
        data = json.dumps(body).encode() if body is not None else None
        stale: str | None = None
        for _attempt in range(2):
            try:
                token = await self._access_token(stale=stale)
            except ProviderUnavailable as exc:  # no token: the request itself never left
                if isinstance(exc, NotSent):
                    raise
                raise NotSent(provider=PROVIDER, detail=f"token: {exc.fields['detail']}") from exc
            headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT}
            if data is not None:
                headers["Content-Type"] = "application/json"
            with _translated(f"{method} {path}", may_apply=may_apply):
                async with self._http().request(
                    method,
                    self._base + path,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=self._timeout,
                ) as resp:
                    status, raw = resp.status, await resp.read()
            if status != 401:
                return status, raw
            stale = token
        raise NotSent(provider=PROVIDER, detail=f"{path}: token refused after renewal")

    async def _access_token(self, *, stale: str | None) -> str:
        """The current token, renewed when near expiry or when ``stale`` (refused) is current."""
        if self._token and self._token != stale and time.monotonic() < self._renew_at:
            return self._token
        async with self._token_lock:
            if self._token and self._token != stale and time.monotonic() < self._renew_at:
                return self._token  # another caller renewed it while we waited
            await self._renew_token()
            return self._token

    async def _renew_token(self) -> None:
        with _translated("token", may_apply=False):
            async with self._http().post(
                self._auth_url,
                json=self._credentials,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            ) as resp:
                status, raw = resp.status, await resp.read()
            if status != 200:
                code, message = wire.error_fields(raw)
                raise ProviderUnavailable(
                    provider=PROVIDER, detail=f"token refused: HTTP {status} {code} {message}"
                )
            try:
                body = wire.parse_json(raw)
                token, expires_in = str(body["access_token"]), float(body["expires_in"])
            except (KeyError, TypeError, ValueError) as exc:
                raise wire.Malformed(f"token: {exc!r}") from exc
        margin = min(RENEW_MARGIN_MAX_S, expires_in * RENEW_MARGIN_SHARE)
        self._token, self._renew_at = token, time.monotonic() + expires_in - margin

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections)
            )
            self._owns_session = True
        return self._session

    @staticmethod
    def _refusal(
        status: int, code: str, message: str, *, may_apply: bool
    ) -> ProviderRejected | ProviderUnavailable | OutcomeUnknown:  # NotSent is unavailable
        """A non-2xx answer as our error: 4xx is a definitive no, except "ask again later"."""
        detail = f"HTTP {status}: {message}" if message else f"HTTP {status}"
        if 400 <= status < 500 and status not in RETRY_LATER:
            return ProviderRejected(provider=PROVIDER, detail=detail, error_code=code)
        if status in RETRY_LATER:  # answered before anything was processed
            return NotSent(provider=PROVIDER, detail=f"{detail} {code}".strip())
        if status >= 500 or not may_apply:
            return ProviderUnavailable(provider=PROVIDER, detail=f"{detail} {code}".strip())
        return OutcomeUnknown(provider=PROVIDER, detail=f"unexpected {detail}")  # 1xx/3xx
