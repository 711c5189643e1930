"""/api/v1/callback over HTTP: register, look, rotate, the log, resend, remove; refusals as
problems naming the field; another party's delivery is 404."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from core.models import AuditEvent, Scope
from core.services.callbacks import outbox
from tests.api.conftest import OTHER_RETAILER, RETAILER, Rig, auth

BASE = "/api/v1/callback"


async def test_register_read_rotate_and_remove_with_the_secret_shown_once(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.READ, Scope.MANAGE])
    made = await rig.client.put(BASE, json={"url": "https://8.8.8.8/hook?t=1"}, headers=auth(key))
    assert made.status == 200, await made.text()
    body = await made.json()
    secret = body["secret"]
    assert (
        body["created"]
        and secret.startswith("whsec_")
        and body["url"] == "https://8.8.8.8/hook?t=1"
    )
    seen = await rig.client.get(BASE, headers=auth(key))
    shown = await seen.json()
    assert seen.status == 200 and shown["recent"] == [] and secret not in await seen.text()
    again = await (
        await rig.client.put(BASE, json={"url": "https://8.8.4.4/h"}, headers=auth(key))
    ).json()
    assert (
        again["created"] is False
        and again["secret"] is None
        and again["url"] == "https://8.8.4.4/h"
    )
    rotated = await (await rig.client.put(f"{BASE}/secret", headers=auth(key))).json()
    assert rotated["secret"] not in (None, secret) and rotated["previous_secret_until"]
    log = await (await rig.client.get(f"{BASE}/deliveries", headers=auth(key))).json()
    assert log == {"deliveries": [], "next_before": None}
    gone = await rig.client.delete(BASE, headers=auth(key))
    assert (gone.status, await gone.json()) == (200, {"removed": True})
    missing = await rig.client.get(BASE, headers=auth(key))
    assert (
        missing.status == 404 and (await missing.json())["type"] == "urn:airgate:problem:not_found"
    )
    async with rig.core.sessions() as session:
        actions = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert {"callback.set", "callback.rotate", "callback.remove"} <= set(actions)
    assert not any(secret in str(a) for a in actions)


async def test_a_bad_url_is_a_422_naming_the_field(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.MANAGE])
    for body, why in (
        ({"url": "http://8.8.8.8/cb"}, "https://"),
        ({"url": "https://169.254.169.254/latest"}, "private, loopback or link-local"),
        ({"url": "https://10.0.0.7/cb"}, "private"),
        ({"url": "https://8.8.8.8/cb", "secret": "mine"}, "Extra inputs"),
        ({}, "Field required"),
    ):
        response = await rig.client.put(BASE, json=body, headers=auth(key))
        assert response.status == 422, (body, await response.text())
        problem = await response.json()
        assert problem["errors"][0]["field"] in ("url", "secret") and why in str(problem), problem


async def test_another_partys_delivery_is_404_and_a_pending_one_is_not_resent(rig: Rig) -> None:
    mine = await rig.key(RETAILER, [Scope.TOPUP, Scope.MANAGE, Scope.READ])
    theirs = await rig.key(OTHER_RETAILER, [Scope.MANAGE])
    await rig.client.put(BASE, json={"url": "https://8.8.8.8/cb"}, headers=auth(mine))
    await rig.client.put(BASE, json={"url": "https://8.8.8.8/cb"}, headers=auth(theirs))
    sent = await rig.client.post(
        "/api/v1/topups",
        json={"msisdn": "0712345670", "amount_minor": 5000},
        headers=auth(mine, "t-1"),
    )
    assert sent.status == 202, await sent.text()
    topup_id = (await sent.json())["id"]
    async with rig.core.transaction() as session:  # the row finish.py writes for an outcome
        [delivery_id] = await outbox.owe(session, [topup_id], window_s=60)
    metrics = await (await rig.client.get("/metrics")).text()
    assert 'airgate_callback_deliveries{state="pending"} 1.0' in metrics
    assert 'airgate_callback_deliveries{state="given_up_24h"} 0.0' in metrics
    path = f"{BASE}/deliveries/{delivery_id}/resend"
    other = await rig.client.post(path, headers=auth(theirs, "r-1"))
    assert other.status == 404, await other.text()
    own = await rig.client.post(path, headers=auth(mine, "r-2"))
    assert own.status == 422 and "still being retried" in (await own.json())["detail"]
    page = await (await rig.client.get(f"{BASE}/deliveries?limit=1", headers=auth(mine))).json()
    [row] = page["deliveries"]
    assert (row["id"], row["reference"], row["state"]) == (delivery_id, topup_id, "pending")
    assert page["next_before"] == delivery_id
    nothing = await (
        await rig.client.get(f"{BASE}/deliveries?before={delivery_id}", headers=auth(mine))
    ).json()
    assert nothing["deliveries"] == []


async def test_two_first_registrations_at_once_make_one_endpoint_and_one_secret(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.MANAGE])
    answers = await asyncio.gather(
        *(
            rig.client.put(BASE, json={"url": f"https://8.8.8.{n}/cb"}, headers=auth(key))
            for n in range(1, 5)
        )
    )
    assert [a.status for a in answers] == [200] * 4
    bodies = [await a.json() for a in answers]
    assert sum(1 for b in bodies if b["secret"]) == 1 and sum(b["created"] for b in bodies) == 1
