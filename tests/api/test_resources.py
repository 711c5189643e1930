"""What the distributor's and the retailer's endpoints do, through the same services as the
chat channels: selling stock, deposits, retailers, sales, purchases, statements."""

from __future__ import annotations

from core.models import Scope
from tests.api.conftest import DISTRIBUTOR, RETAILER, Rig, auth


async def test_a_distributor_sells_stock_and_records_a_deposit(rig: Rig) -> None:
    key = await rig.key(DISTRIBUTOR, [Scope.STOCK, Scope.READ])
    retailer = await rig.party_id(RETAILER)
    body = {"operator": "safaricom-ke", "face_minor": 10_000}
    sold = await rig.client.post(
        f"/api/v1/retailers/{retailer}/stock", json=body, headers=auth(key, "sale-1")
    )
    assert sold.status == 201, await sold.text()
    sale = await sold.json()
    assert sale["reference"].startswith("S") and sale["face_minor"] == 10_000
    again = await rig.client.post(
        f"/api/v1/retailers/{retailer}/stock", json=body, headers=auth(key, "sale-1")
    )
    assert await again.json() == sale
    balance = await (
        await rig.client.get(f"/api/v1/retailers/{retailer}/balance", headers=auth(key))
    ).json()
    safaricom = next(s for s in balance["stock"] if s["operator"] == "safaricom-ke")
    assert safaricom["available_minor"] == 500_000 + 10_000
    deposit = {"amount_minor": 2_000, "reference": "MPESA-XYZ"}
    paid = await rig.client.post(
        f"/api/v1/retailers/{retailer}/deposits", json=deposit, headers=auth(key, "dep-1")
    )
    assert paid.status == 201, await paid.text()
    twice = await rig.client.post(
        f"/api/v1/retailers/{retailer}/deposits", json=deposit, headers=auth(key, "dep-2")
    )
    assert twice.status == 409
    assert (await twice.json())["type"] == "urn:airgate:problem:duplicate_reference"


async def test_a_distributor_lists_adds_and_suspends_retailers(rig: Rig) -> None:
    key = await rig.key(DISTRIBUTOR, [Scope.MANAGE, Scope.READ])
    listed = await (await rig.client.get("/api/v1/retailers", headers=auth(key))).json()
    assert len(listed["items"]) == 3 and listed["next_offset"] is None
    made = await rig.client.post(
        "/api/v1/retailers",
        json={"name": "Kiosk Nine", "msisdn": "0700000509", "language": "sw"},
        headers=auth(key, "new-1"),
    )
    assert made.status == 201, await made.text()
    new_id = (await made.json())["id"]
    dup = await rig.client.post(
        "/api/v1/retailers",
        json={"name": "Kiosk Nine", "msisdn": "0700000509"},
        headers=auth(key, "new-2"),
    )
    assert dup.status == 409
    off = await rig.client.post(f"/api/v1/retailers/{new_id}/suspend", headers=auth(key, "s"))
    assert (await off.json())["status"] == "suspended"
    on = await rig.client.post(f"/api/v1/retailers/{new_id}/activate", headers=auth(key, "a"))
    assert (await on.json())["status"] == "active"
    sales = await rig.client.get("/api/v1/sales/today", headers=auth(key))
    assert sales.status == 200
    assert (await sales.json())["topups"] == 0


async def test_a_days_sales_count_the_retailers_topups(rig: Rig) -> None:
    shop = await rig.key(RETAILER, [Scope.TOPUP, Scope.READ])
    await rig.client.post(
        "/api/v1/topups",
        json={"msisdn": "0712345670", "amount_minor": 5000},
        headers=auth(shop, "t-1"),
    )
    boss = await rig.key(DISTRIBUTOR, [Scope.READ])
    day = await rig.client.get("/api/v1/sales", headers=auth(boss))
    assert day.status == 200, await day.text()
    figures = await day.json()
    assert figures["open"] == 1 and figures["delivered"] == 0
    assert [p["open_minor"] for p in figures["products"]] == [5000]
    mine = await (await rig.client.get("/api/v1/sales", headers=auth(shop))).json()
    assert mine["open"] == 1
    bad = await rig.client.get("/api/v1/sales?day=yesterday", headers=auth(boss))
    assert bad.status == 422


async def test_a_retailer_buys_stock_from_cash_or_asks_on_credit(rig: Rig) -> None:
    boss = await rig.key(DISTRIBUTOR, [Scope.STOCK])
    retailer = await rig.party_id(RETAILER)
    deposit = {"amount_minor": 1_000, "reference": "CASH-1"}
    await rig.client.post(
        f"/api/v1/retailers/{retailer}/deposits", json=deposit, headers=auth(boss, "d")
    )
    key = await rig.key(RETAILER, [Scope.STOCK])
    bought = await rig.client.post(
        "/api/v1/stock/purchases",
        json={"operator": "safaricom-ke", "face_minor": 500},
        headers=auth(key, "buy-1"),
    )
    assert bought.status == 201, await bought.text()
    assert (await bought.json())["state"] == "bought"
    big = await rig.client.post(
        "/api/v1/stock/purchases",
        json={"operator": "safaricom-ke", "face_minor": 10_000_000},
        headers=auth(key, "buy-2"),
    )
    assert big.status in (202, 409), await big.text()


async def test_a_statement_as_json_and_as_csv(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.READ, Scope.TOPUP])
    await rig.client.post(
        "/api/v1/topups",
        json={"msisdn": "0712345670", "amount_minor": 5000},
        headers=auth(key, "t"),
    )
    as_json = await rig.client.get("/api/v1/statement", headers=auth(key))
    assert as_json.status == 200, await as_json.text()
    moves = (await as_json.json())["movements"]
    assert any(m["kind"] == "reserve" and m["amount_minor"] == -5000 for m in moves)
    as_csv = await rig.client.get("/api/v1/statement?format=csv", headers=auth(key))
    assert as_csv.content_type == "text/csv"
    assert (await as_csv.text()).startswith("date,time,kind,asset,amount,balance,reference")
    wrong = await rig.client.get(
        "/api/v1/statement?from=2026-12-02&to=2026-12-01", headers=auth(key)
    )
    assert wrong.status == 422
