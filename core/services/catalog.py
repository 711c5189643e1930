"""Operators, products, number detection and discount agreements."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.catalog_snapshot import load_snapshot
from core.context import Core
from core.errors import InputError, InvalidAmount, NotFound
from core.models import Agreement, NumberPrefix, Operator, OperatorProvider, Product, ProductKind
from core.models.catalog import ALL_OPERATORS
from core.money import format_minor
from core.services.audit import Actor, record

prefix_t = NumberPrefix.__table__  # type: ignore[attr-defined]


def demo_catalog_text() -> str:
    return resources.files("core").joinpath("data/demo_ke.toml").read_text(encoding="utf-8")


# Keys of catalogs from before operator ids were kept per aggregator (migration 0006).
_OLD_KEYS = {  # aggregator-terms: the old names, refused with the new ones
    "provider_operator_id": "airtime",  # aggregator-terms
    "provider_bundle_operator_id": "bundle",  # aggregator-terms
}


@dataclass(frozen=True, slots=True)
class _Entry:
    """One ``[[operators]]`` entry of a catalog file, as rows."""

    operator: Operator
    products: list[Product]
    refs: list[OperatorProvider]


@dataclass(frozen=True, slots=True)
class CatalogCounts:
    operators: int
    products: int
    prefixes: int


async def load_catalog(core: Core, *, text: str, actor: Actor) -> CatalogCounts:
    """Insert or update every operator, product and prefix of a catalog file (TOML)."""
    try:
        data = tomllib.loads(text)
        country = str(data["country"]).upper()
        operators = [_operator_rows(op, country) for op in data["operators"]]
        prefixes = [
            NumberPrefix(prefix=p["prefix"], operator_code=p["operator"])
            for p in data.get("prefixes", [])
        ]
    except tomllib.TOMLDecodeError as exc:
        raise InputError(reason=f"catalog is not valid TOML: {exc}") from None
    except KeyError as exc:
        raise InputError(reason=f"catalog: an entry lacks the field {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(reason=f"catalog: {exc}") from None
    n_products = 0
    async with core.transaction() as session:
        known = {e.operator.code for e in operators}
        known |= {op.code for op in await list_operators(session)}
        for prefix in prefixes:
            if prefix.operator_code not in known:
                raise InputError(
                    reason=f"catalog: prefix {prefix.prefix} names unknown operator "
                    f"{prefix.operator_code!r}"
                )
        for entry in operators:
            await session.merge(entry.operator)
            await session.flush()  # the operator before the rows that name it
            for row in [*entry.products, *entry.refs]:
                await session.merge(row)
            n_products += len(entry.products)
        await session.flush()
        await session.execute(
            delete(prefix_t).where(prefix_t.c.prefix.in_([p.prefix for p in prefixes]))
        )
        session.add_all(prefixes)
        await record(
            session,
            actor=actor,
            action="catalog.load",
            details={"operators": len(operators), "products": n_products},
        )
    core.catalog.invalidate()
    return CatalogCounts(operators=len(operators), products=n_products, prefixes=len(prefixes))


def _operator_rows(op: dict[str, Any], country: str) -> _Entry:
    code = op["code"]
    operator = Operator(
        code=code,
        country=country,
        name=op["name"],
        currency=op["currency"],
        carrier_names=",".join(op.get("carrier_names", [op["name"]])),
    )
    return _Entry(operator, _products(op), _refs(op))


def _refs(op: dict[str, Any]) -> list[OperatorProvider]:
    """``providers.<adapter> = { airtime = "1", bundle = "101" }``: its ids at each aggregator."""
    for old, new in _OLD_KEYS.items():
        if old in op:
            raise ValueError(
                f"operator {op['code']}: {old} is now providers.<aggregator>.{new}, e.g. "
                f'providers.reloadly = {{ {new} = "{op[old]}" }} (docs/PROVIDERS.md)'
            )
    refs = []
    for provider, ids in op.get("providers", {}).items():
        airtime, bundle = ids.get("airtime"), ids.get("bundle")
        refs.append(
            OperatorProvider(
                operator_code=op["code"],
                provider=provider,
                airtime_ref=str(airtime) if airtime is not None else None,
                bundle_ref=str(bundle) if bundle is not None else None,
            )
        )
    return refs


def _products(op: dict[str, Any]) -> list[Product]:
    code = op["code"]
    products = []
    if airtime := op.get("airtime"):
        products.append(
            Product(
                code=f"{code}:airtime",
                operator_code=code,
                kind=ProductKind.AIRTIME,
                name=f"{op['name']} airtime",
                min_minor=airtime["min_minor"],
                max_minor=airtime["max_minor"],
                step_minor=airtime.get("step_minor", 1),
            )
        )
    for bundle in op.get("bundles", []):
        products.append(
            Product(
                code=f"{code}:{bundle['code']}",
                operator_code=code,
                kind=ProductKind(bundle["kind"]),
                name=bundle["name"],
                price_minor=bundle["price_minor"],
                validity_days=bundle.get("validity_days"),
                data_mb=bundle.get("data_mb"),
                sms_count=bundle.get("sms_count"),
            )
        )
    return products


async def get_operator(session: AsyncSession, code: str) -> Operator:
    operator = await session.get(Operator, code)
    if operator is None:
        raise NotFound(kind="operator", key=code)
    return operator


async def list_operators(session: AsyncSession, *, country: str | None = None) -> list[Operator]:
    query = select(Operator).order_by(Operator.code)
    if country:
        query = query.where(col(Operator.country) == country)
    return list((await session.execute(query)).scalars())


async def detect_operator(session: AsyncSession, msisdn: str) -> Operator:
    """The operator of an E.164 number (see :meth:`Catalog.detect`), read fresh from SQL."""
    return (await load_snapshot(session)).detect(msisdn)


async def products_of(
    session: AsyncSession, operator_code: str, *, kind: ProductKind | None = None
) -> list[Product]:
    query = (
        select(Product)
        .where(col(Product.operator_code) == operator_code, col(Product.active))
        .order_by(Product.kind, Product.price_minor)  # type: ignore[arg-type]
    )
    if kind is not None:
        query = query.where(col(Product.kind) == kind)
    return list((await session.execute(query)).scalars())


def check_airtime_amount(product: Product, amount_minor: int, currency: str) -> None:
    """Refuse an airtime amount outside the range or off the step, saying what is allowed."""
    low, high, step = (
        product.min_minor or 1,
        product.max_minor or amount_minor,
        product.step_minor or 1,
    )
    if not low <= amount_minor <= high or amount_minor % step:
        raise InvalidAmount(
            reason=(
                f"amount must be {format_minor(low, currency)} to {format_minor(high, currency)}"
                + (f" in steps of {format_minor(step, currency)}" if step > 1 else "")
            )
        )


async def set_agreement(
    core: Core,
    *,
    actor: Actor,
    seller_id: int,
    buyer_id: int,
    discount_bps: int,
    operator_code: str = ALL_OPERATORS,
    commission_bps: int | None = None,
) -> Agreement:
    if not 0 <= discount_bps <= 10_000:
        raise InvalidAmount(reason="a discount is 0 to 10000 basis points")
    async with core.transaction() as session:
        if operator_code != ALL_OPERATORS:
            await get_operator(session, operator_code)
        agreement = (
            await session.execute(
                select(Agreement).where(
                    col(Agreement.seller_id) == seller_id,
                    col(Agreement.buyer_id) == buyer_id,
                    col(Agreement.operator_code) == operator_code,
                )
            )
        ).scalar() or Agreement(
            seller_id=seller_id, buyer_id=buyer_id, operator_code=operator_code, discount_bps=0
        )
        agreement.discount_bps = discount_bps
        agreement.commission_bps = commission_bps
        session.add(agreement)
        await record(
            session,
            actor=actor,
            action="agreement.set",
            subject_party_id=buyer_id,
            details={"seller_id": seller_id, "operator": operator_code, "bps": discount_bps},
        )
    return agreement


async def agreement_for(
    session: AsyncSession, *, seller_id: int, buyer_id: int, operator_code: str
) -> Agreement | None:
    """The operator-specific agreement if there is one, else the all-operators one."""
    rows = (
        await session.execute(
            select(Agreement).where(
                col(Agreement.seller_id) == seller_id,
                col(Agreement.buyer_id) == buyer_id,
                col(Agreement.operator_code).in_([operator_code, ALL_OPERATORS]),
            )
        )
    ).scalars()
    by_code = {a.operator_code: a for a in rows}
    return by_code.get(operator_code) or by_code.get(ALL_OPERATORS)


async def agreements_of(session: AsyncSession, *, party_id: int) -> list[Agreement]:
    """Every agreement where the party sells or buys."""
    query = (
        select(Agreement)
        .where((col(Agreement.seller_id) == party_id) | (col(Agreement.buyer_id) == party_id))
        .order_by(col(Agreement.seller_id), col(Agreement.buyer_id), col(Agreement.operator_code))
    )
    return list((await session.execute(query)).scalars())
