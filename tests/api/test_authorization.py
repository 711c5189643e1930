"""The authorization matrix: every endpoint against a key lacking its scope (403), a key with only
its scope (never 401/403 for the right role), a key of the wrong role (403), and one party's key
against another party's resources (404, as if they did not exist).

A new endpoint needs a line in SAMPLES (a valid request for it): the first test fails until then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from api.app import endpoints
from api.endpoint import Endpoint
from core.models import Role, Scope
from core.services import parties
from core.services.audit import Actor
from tests.api.conftest import DISTRIBUTOR, RETAILER, Rig, auth


@dataclass(frozen=True)
class Ids:
    retailer: int  # the seeded distributor's retailer
    foreign_retailer: int  # another distributor's retailer
    topup: str = "T000000000000000"
    broadcast: int = 1


Sample = Callable[[Ids], tuple[str, dict[str, Any] | None]]

SAMPLES: dict[str, Sample] = {
    "get_balance": lambda i: ("/balance", None),
    "get_statement": lambda i: ("/statement?format=csv", None),
    "list_operators": lambda i: ("/operators", None),
    "list_products": lambda i: ("/operators/safaricom-ke/products", None),
    "detect": lambda i: ("/operator-lookup?msisdn=0712345670", None),
    "send_topup": lambda i: ("/topups", {"msisdn": "0712345670", "amount_minor": 5000}),
    "get_topup": lambda i: (f"/topups/{i.topup}", None),
    "list_topups": lambda i: ("/topups", None),
    "buy_stock": lambda i: ("/stock/purchases", {"operator": "safaricom-ke", "face_minor": 100}),
    "sell_stock": lambda i: (
        f"/retailers/{i.retailer}/stock",
        {"operator": "safaricom-ke", "face_minor": 100},
    ),
    "record_deposit": lambda i: (
        f"/retailers/{i.retailer}/deposits",
        {"amount_minor": 100, "reference": "MPESA-1"},
    ),
    "list_retailers": lambda i: ("/retailers", None),
    "add_retailer": lambda i: ("/retailers", {"name": "New Shop", "msisdn": "0700000555"}),
    "retailer_balance": lambda i: (f"/retailers/{i.retailer}/balance", None),
    "suspend_retailer": lambda i: (f"/retailers/{i.retailer}/suspend", None),
    "activate_retailer": lambda i: (f"/retailers/{i.retailer}/activate", None),
    "sales_today": lambda i: ("/sales/today", None),
    "sales_of_day": lambda i: ("/sales?day=2026-12-01", None),
    "send_broadcast": lambda i: ("/broadcasts", {"text": "hello"}),
    "get_broadcast": lambda i: (f"/broadcasts/{i.broadcast}", None),
    "put_callback": lambda i: ("/callback", {"url": "https://8.8.8.8/cb"}),
    "get_callback": lambda i: ("/callback", None),
    "delete_callback": lambda i: ("/callback", None),
    "rotate_secret": lambda i: ("/callback/secret", None),
    "list_deliveries": lambda i: ("/callback/deliveries?state=given_up", None),
    "resend_delivery": lambda i: ("/callback/deliveries/1/resend", None),
    "ping_callback": lambda i: ("/callback/ping", None),
}
FOREIGN = (
    "sell_stock",
    "record_deposit",
    "retailer_balance",
    "suspend_retailer",
    "activate_retailer",
)
ALL = list(endpoints())


def test_every_endpoint_has_a_sample() -> None:
    assert {e.operation_id for e in ALL} <= set(SAMPLES)


async def _ids(rig: Rig) -> Ids:
    other = await parties.add_party(
        rig.core,
        actor=Actor.cli(),
        role=Role.DISTRIBUTOR,
        name="Other Dist",
        msisdn="0700000900",
        parent_ref="+254700000000",
    )
    theirs = await parties.add_party(
        rig.core,
        actor=Actor.cli(),
        role=Role.RETAILER,
        name="Their Shop",
        msisdn="0700000901",
        parent_ref=other.id,
    )
    return Ids(retailer=await rig.party_id(RETAILER), foreign_retailer=theirs.id or 0)


async def _call(rig: Rig, e: Endpoint, key: str, ids: Ids, n: int) -> Any:
    path, body = SAMPLES[e.operation_id](ids)
    headers = auth(key, f"m-{e.operation_id}-{n}" if e.method == "POST" else None)
    return await rig.client.request(e.method, "/api/v1" + path, json=body, headers=headers)


def _party_of(e: Endpoint) -> str:
    return RETAILER if Role.RETAILER in e.roles else DISTRIBUTOR


async def test_the_scope_matrix(rig: Rig) -> None:
    ids = await _ids(rig)
    made: dict[tuple[str, frozenset[Scope]], str] = {}  # a party has at most 20 live keys

    async def key(party: str, scopes: frozenset[Scope]) -> str:
        if (party, scopes) not in made:
            made[party, scopes] = await rig.key(party, scopes)
        return made[party, scopes]

    for n, e in enumerate(ALL):
        party = _party_of(e)
        without = await key(party, frozenset(s for s in Scope if s != e.scope))
        response = await _call(rig, e, without, ids, n)
        assert response.status == 403, (e.operation_id, await response.text())
        assert (await response.json())["type"] == "urn:airgate:problem:insufficient_scope"
        only = await key(party, frozenset([e.scope]))
        response = await _call(rig, e, only, ids, n)
        assert response.status not in (401, 403), (e.operation_id, await response.text())
        assert response.status < 500, (e.operation_id, await response.text())


async def test_the_role_matrix(rig: Rig) -> None:
    ids = await _ids(rig)
    keys = {Role.RETAILER: await rig.key(RETAILER), Role.DISTRIBUTOR: await rig.key(DISTRIBUTOR)}
    for n, e in enumerate(ALL):
        for role, key in keys.items():
            if role in e.roles:
                continue
            response = await _call(rig, e, key, ids, n)
            assert response.status == 403, (e.operation_id, role, await response.text())
            assert (await response.json())["type"] == "urn:airgate:problem:not_permitted"


@pytest.mark.parametrize("operation", FOREIGN)
async def test_another_distributors_retailer_is_404(rig: Rig, operation: str) -> None:
    ids = await _ids(rig)
    e = next(e for e in ALL if e.operation_id == operation)
    key = await rig.key(DISTRIBUTOR)
    foreign = Ids(retailer=ids.foreign_retailer, foreign_retailer=0)
    response = await _call(rig, e, key, foreign, 0)
    assert response.status == 404, await response.text()
    assert (await response.json())["type"] == "urn:airgate:problem:not_found"
    # ... and a retailer id that exists nowhere answers the very same
    nowhere = Ids(retailer=999_999, foreign_retailer=0)
    response_nowhere = await _call(rig, e, key, nowhere, 1)
    assert response_nowhere.status == 404
    assert (await response_nowhere.json())["title"] == (await response.json())["title"]


async def test_another_distributors_broadcast_is_404(rig: Rig) -> None:
    await _ids(rig)
    mine = await rig.key(DISTRIBUTOR)
    sent = await rig.client.post(
        "/api/v1/broadcasts", json={"text": "hello"}, headers=auth(mine, "bc-1")
    )
    assert sent.status == 202, await sent.text()
    broadcast_id = (await sent.json())["id"]
    assert (
        await rig.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=auth(mine))
    ).status == 200
    theirs = await rig.key("0700000900")
    response = await rig.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=auth(theirs))
    assert response.status == 404


async def test_a_suspended_partys_key_is_refused(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.READ])
    boss = await rig.key(DISTRIBUTOR, [Scope.MANAGE])
    retailer = await rig.party_id(RETAILER)
    done = await rig.client.post(f"/api/v1/retailers/{retailer}/suspend", headers=auth(boss, "s-1"))
    assert done.status == 200, await done.text()
    response = await rig.client.get("/api/v1/balance", headers=auth(key))
    assert response.status == 403
    assert (await response.json())["type"] == "urn:airgate:problem:party_inactive"
