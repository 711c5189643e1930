"""The catalog as an in-memory snapshot: operator detection and product lookup without SQL.

A top-up needs the operator of a number and a product on every request; both change rarely. Each
process keeps one snapshot per :class:`CatalogCache`, reloaded after ``ttl_s`` (so a catalog loaded
by another process shows within that delay) and at once after ``invalidate`` (``catalog load`` in
this process).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import NotFound
from core.models import NumberPrefix, Operator, OperatorProvider, Product
from core.msisdn import carrier_of

CATALOG_TTL_S = 30.0  # how stale another process's catalog change may be seen here


@dataclass(frozen=True, slots=True)
class Catalog:
    operators: dict[str, Operator]
    products: dict[str, Product]
    # (prefix, operator code), longest prefix first: ported numbers override carrier data.
    prefixes: tuple[tuple[str, str], ...]
    # (operator code, aggregator name) → the operator's ids at that aggregator.
    refs: dict[tuple[str, str], OperatorProvider]

    def detect(self, msisdn: str) -> Operator:
        """The operator of an E.164 number: the prefix table first, then phonenumbers' carrier."""
        for prefix, code in self.prefixes:
            if msisdn.startswith(prefix):
                return self.operator(code)
        carrier, country = carrier_of(msisdn)
        for operator in sorted(self.operators.values(), key=lambda op: op.code):
            names = operator.carrier_names.split(",")
            if carrier and operator.country == country and carrier in names:
                return operator
        raise NotFound(kind="operator for number", key=msisdn)

    def operator(self, code: str) -> Operator:
        if (operator := self.operators.get(code)) is None:
            raise NotFound(kind="operator", key=code)
        return operator

    def operator_ref(self, code: str, *, provider: str, bundle: bool) -> str:
        """The aggregator's id for an operator's airtime or bundles; LookupError if the catalog
        names none (a person must add it: nothing can be sent)."""
        row = self.refs.get((code, provider))
        ref = row.ref(bundle=bundle) if row is not None else None
        if not ref:
            what = "bundles" if bundle else "airtime"
            raise LookupError(f"operator {code} has no {provider} id for {what}")
        return ref

    def product(self, code: str) -> Product:
        product = self.products.get(code)
        if product is None or not product.active:
            raise NotFound(kind="product", key=code)
        return product


async def load_snapshot(session: AsyncSession) -> Catalog:
    operators = {op.code: op for op in (await session.execute(select(Operator))).scalars()}
    products = {p.code: p for p in (await session.execute(select(Product))).scalars()}
    rows = (await session.execute(select(NumberPrefix))).scalars()
    prefixes = sorted(((p.prefix, p.operator_code) for p in rows), key=lambda r: -len(r[0]))
    refs = {
        (r.operator_code, r.provider): r
        for r in (await session.execute(select(OperatorProvider))).scalars()
    }
    session.expunge_all()  # detached copies: the snapshot outlives the session
    return Catalog(operators=operators, products=products, prefixes=tuple(prefixes), refs=refs)


class CatalogCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float = CATALOG_TTL_S):
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._snapshot: Catalog | None = None
        self._loaded_at = 0.0

    async def get(self) -> Catalog:
        if self._snapshot is None or time.monotonic() - self._loaded_at > self._ttl_s:
            async with self._sessions() as session:
                self._snapshot = await load_snapshot(session)
            self._loaded_at = time.monotonic()
        return self._snapshot

    def invalidate(self) -> None:
        self._snapshot = None
