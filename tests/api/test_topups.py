"""POST /topups through the same service as the chat channels, one top-up per Idempotency-Key
however the duplicates arrive, and the reads: one by reference, a party's by page."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from core.models import Scope, Topup
from tests.api.conftest import DISTRIBUTOR, OTHER_RETAILER, RETAILER, Rig, auth

CUSTOMER = "0712345670"


async def _count(rig: Rig) -> int:
    async with rig.core.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Topup))).scalar() or 0)


async def test_a_topup_is_accepted_with_our_reference_and_read_back(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.TOPUP, Scope.READ])
    body = {"msisdn": CUSTOMER, "amount_minor": 5000}
    response = await rig.client.post("/api/v1/topups", json=body, headers=auth(key, "k-1"))
    assert response.status == 202, await response.text()
    made = await response.json()
    assert made["state"] == "reserved" and made["id"].startswith("T")
    assert made["operator"] == "safaricom-ke" and made["channel"] == "api"
    assert "712345670" not in await response.text()  # the number comes back masked
    one = await rig.client.get(f"/api/v1/topups/{made['id']}", headers=auth(key))
    assert one.status == 200
    assert (await one.json())["id"] == made["id"]
    balance = await (await rig.client.get("/api/v1/balance", headers=auth(key))).json()
    safaricom = next(s for s in balance["stock"] if s["operator"] == "safaricom-ke")
    assert safaricom["reserved_minor"] == 5000


async def test_the_same_key_replays_and_another_body_is_409(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.TOPUP])
    body = {"msisdn": CUSTOMER, "amount_minor": 5000}
    first = await rig.client.post("/api/v1/topups", json=body, headers=auth(key, "same"))
    again = await rig.client.post("/api/v1/topups", json=body, headers=auth(key, "same"))
    assert first.status == again.status == 202
    assert await first.json() == await again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await rig.client.post(
        "/api/v1/topups", json={**body, "amount_minor": 6000}, headers=auth(key, "same")
    )
    assert other.status == 409
    assert (await other.json())["type"] == "urn:airgate:problem:idempotency_conflict"
    assert await _count(rig) == 1


async def test_concurrent_duplicates_make_one_topup(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.TOPUP])
    body = {"msisdn": CUSTOMER, "amount_minor": 5000}

    async def post() -> tuple[int, dict[str, object]]:
        response = await rig.client.post("/api/v1/topups", json=body, headers=auth(key, "race"))
        return response.status, await response.json()

    answers = await asyncio.gather(*(post() for _ in range(12)))
    assert {status for status, _ in answers} == {202}
    assert len({str(body["id"]) for _, body in answers}) == 1
    assert await _count(rig) == 1


async def test_the_chat_guards_hold_repeat_and_stock(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.TOPUP])
    body = {"msisdn": CUSTOMER, "amount_minor": 5000}
    assert (
        await rig.client.post("/api/v1/topups", json=body, headers=auth(key, "a"))
    ).status == 202
    repeat = await rig.client.post("/api/v1/topups", json=body, headers=auth(key, "b"))
    assert repeat.status == 409
    problem = await repeat.json()
    assert problem["type"] == "urn:airgate:problem:repeat_needs_confirmation"
    assert "712345670" not in problem["detail"]
    confirmed = await rig.client.post(
        "/api/v1/topups", json={**body, "confirm_repeat": True}, headers=auth(key, "c")
    )
    assert confirmed.status == 202
    too_much = await rig.client.post(
        "/api/v1/topups",
        json={"msisdn": CUSTOMER, "amount_minor": 1_000_000},
        headers=auth(key, "d"),
    )
    assert too_much.status in (409, 422)
    assert (await too_much.json())["type"].startswith("urn:airgate:problem:")


async def test_validation_names_fields_and_the_header(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.TOPUP])
    no_key = await rig.client.post("/api/v1/topups", json={"msisdn": CUSTOMER}, headers=auth(key))
    assert no_key.status == 422
    assert (await no_key.json())["errors"][0]["field"] == "Idempotency-Key"
    bad = await rig.client.post(
        "/api/v1/topups",
        json={"msisdn": CUSTOMER, "amount_minor": -1, "colour": "red"},
        headers=auth(key, "v"),
    )
    assert bad.status == 422
    fields = {e["field"] for e in (await bad.json())["errors"]}
    assert fields == {"amount_minor", "colour"}
    broken = await rig.client.post(
        "/api/v1/topups",
        data=b"{not json",
        headers={**auth(key, "w"), "Content-Type": "application/json"},
    )
    assert broken.status == 400


async def test_listing_pages_through_with_a_cursor_and_filters(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.TOPUP, Scope.READ])
    made = []
    for i in range(5):
        body = {"msisdn": f"07123456{70 + i}", "amount_minor": 5000}
        response = await rig.client.post("/api/v1/topups", json=body, headers=auth(key, f"p{i}"))
        made.append((await response.json())["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (
            await rig.client.get("/api/v1/topups", params=params, headers=auth(key))
        ).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 5
    none = await rig.client.get("/api/v1/topups", params={"state": "delivered"}, headers=auth(key))
    assert (await none.json())["items"] == []
    bad = await rig.client.get("/api/v1/topups", params={"cursor": "zzz"}, headers=auth(key))
    assert bad.status == 422


async def test_another_partys_topup_is_404_and_the_distributor_sees_its_own(rig: Rig) -> None:
    mine = await rig.key(RETAILER, [Scope.TOPUP, Scope.READ])
    other = await rig.key(OTHER_RETAILER, [Scope.READ])
    boss = await rig.key(DISTRIBUTOR, [Scope.READ])
    body = {"msisdn": CUSTOMER, "amount_minor": 5000}
    ref = (
        await (await rig.client.post("/api/v1/topups", json=body, headers=auth(mine, "x"))).json()
    )["id"]
    assert (await rig.client.get(f"/api/v1/topups/{ref}", headers=auth(other))).status == 404
    assert (await rig.client.get(f"/api/v1/topups/{ref}", headers=auth(boss))).status == 200
    listed = await (await rig.client.get("/api/v1/topups", headers=auth(other))).json()
    assert listed["items"] == []


async def test_a_duplicate_of_a_request_still_running_is_409_in_progress(
    rig: Rig, redis_url: str
) -> None:
    """The first request's claim is held (as while it runs): its duplicate waits for it, then
    says it is still in progress; the claim's end lets the next one run."""
    import orjson
    import redis.asyncio as aioredis

    from api.idempotency import fingerprint, redis_key
    from api.topups import TopupRequest

    key = await rig.key(RETAILER, [Scope.TOPUP])
    body = {"msisdn": CUSTOMER, "amount_minor": 5000}
    party = await rig.party_id(RETAILER)
    canonical = TopupRequest.model_validate(body).model_dump_json(by_alias=True).encode()
    fp = fingerprint("POST", "/api/v1/topups", canonical)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        held = redis_key(party, "held")
        await redis.set(held, orjson.dumps({"fp": fp}), ex=60)
        busy = await rig.client.post("/api/v1/topups", json=body, headers=auth(key, "held"))
        assert busy.status == 409
        assert (await busy.json())["type"] == "urn:airgate:problem:idempotency_in_progress"
        assert busy.headers["Retry-After"] == "1"
        await redis.delete(held)
    finally:
        await redis.aclose()
    done = await rig.client.post("/api/v1/topups", json=body, headers=auth(key, "held"))
    assert done.status == 202
    assert await _count(rig) == 1


async def test_a_wrong_method_is_a_problem_too(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.READ])
    response = await rig.client.delete("/api/v1/topups", headers=auth(key))
    assert response.status == 405
    assert response.content_type == "application/problem+json"
    assert "GET" in response.headers["Allow"]
