"""Outcome callbacks end to end: a real worker POSTs to a real local receiver that fails first.

The receiver checks each signature with the verifier docs/API.md shows, run verbatim from the doc.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from core.logging import configure
from core.models import CallbackDelivery, CallbackEndpoint, CallbackState
from core.models.types import utcnow
from core.services import callbacks
from core.services.callbacks import outbox, signing
from tests.fakes.receiver import receiver
from tests.helpers import ADMIN
from tests.lifecycle.conftest import Rig
from tests.lifecycle.test_paths import _shop, _top_up

ROOT = Path(__file__).resolve().parents[2]
FIRST_S = 0.5
CALLBACKS_FAST = {
    "callback_allow_private": True,  # the receiver is on 127.0.0.1
    "callback_allow_http": True,
    "callback_backoff_first_s": FIRST_S,
    "callback_backoff_max_s": 2.0,
    "callback_timeout_s": 2.0,
}


@pytest.fixture
def rig_overrides() -> dict[str, Any]:
    return dict(CALLBACKS_FAST)


def doc_verifier() -> Any:
    """``verify`` as docs/API.md prints it: the block after the verify-snippet marker, run as is."""
    text = (ROOT / "docs" / "API.md").read_text()
    block = text.split("<!-- verify-snippet", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(block.splitlines()) <= 12, "the doc promises a few lines"
    namespace: dict[str, Any] = {}
    exec(block, namespace)  # noqa: S102 - the documented snippet, verbatim
    return namespace["verify"]


async def _set(rig: Rig, party_id: int, url: str) -> callbacks.Registered:
    return await callbacks.register(rig.core, actor=ADMIN, party_id=party_id, url=url)


async def rows(rig: Rig, topup_id: str) -> list[CallbackDelivery]:
    async with rig.core.sessions() as session:
        found = await session.execute(
            select(CallbackDelivery)
            .where(CallbackDelivery.topup_id == topup_id)
            .order_by(CallbackDelivery.party_id)  # type: ignore[arg-type]
        )
        return list(found.scalars())


async def settled(
    rig: Rig, topup_id: str, *, count: int, timeout_s: float = 30
) -> list[CallbackDelivery]:
    """The top-up's deliveries once there are ``count`` and none is pending."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await rows(rig, topup_id)
        if len(found) == count and all(r.state != CallbackState.PENDING for r in found):
            return found
        assert time.monotonic() < deadline, [(r.state, r.attempts) for r in found]
        await asyncio.sleep(0.05)


async def test_fails_first_then_delivered_signed_to_retailer_and_distributor(rig: Rig) -> None:
    verify = doc_verifier()
    shop = await _shop(rig)
    assert shop.id and shop.parent_id
    async with receiver(fail_first={"/shop": 1}) as got:
        mine = await _set(rig, shop.id, f"{got.url}/shop")
        theirs = await _set(rig, shop.parent_id, f"{got.url}/d")
        topup = await rig.wait((await _top_up(rig, shop, 0)).id)
        shop_row, dist_row = sorted(
            await settled(rig, topup.id, count=2), key=lambda r: r.party_id != shop.id
        )
        first, second = got.to("/shop")
        [to_dist] = got.to("/d")
    assert mine.secret and theirs.secret and mine.secret != theirs.secret
    assert mine.secret not in repr(mine) and mine.created and mine.secret.startswith("whsec_")
    # Both attempts carry a valid signature of the same body; a changed body or the other
    # party's secret does not verify.
    assert first.body == second.body
    assert all(verify(mine.secret, p.headers, p.body) for p in (first, second))
    assert not verify(mine.secret, first.headers, first.body.replace(b"delivered", b"failed"))
    assert not verify(theirs.secret, first.headers, first.body)
    assert verify(theirs.secret, to_dist.headers, to_dist.body)
    # The retry came after the first back-off gap (±20 %), not at once.
    assert second.at - first.at >= FIRST_S * 0.8
    event = json.loads(second.body)
    assert event["id"] == second.headers["AirGate-Event-Id"] == to_dist.headers["AirGate-Event-Id"]
    assert got.events("/shop") == {event["id"]} and len(got.to("/shop")) == 2
    assert event["type"] == "topup.delivered"
    data = event["data"]
    assert data["id"] == topup.id and data["state"] == "delivered"
    assert (data["amount_minor"], data["currency"]) == (5_000, "KES")
    assert data["operator"] == "safaricom-ke" and data["final_at"] and data["created_at"]
    assert data["msisdn"] == "+254712****70" and b"712345670" not in second.body
    assert (shop_row.state, shop_row.attempts, shop_row.last_status) == ("delivered", 2, 200)
    assert (dist_row.state, dist_row.attempts) == ("delivered", 1)
    # A replayed request (its timestamp older than the window) is refused by the verifier.
    old = int(time.time()) - 600
    stale = signing.headers([mine.secret], event_id=event["id"], timestamp=old, body=first.body)
    assert not verify(mine.secret, stale, first.body)


@pytest.mark.parametrize("rig_overrides", [{**CALLBACKS_FAST, "callback_window_s": 5}])
async def test_failed_outcome_retried_with_backoff_then_given_up_and_resent(rig: Rig) -> None:
    shop = await _shop(rig)
    assert shop.id
    async with receiver(status={"/s": 503}) as got:
        await _set(rig, shop.id, f"{got.url}/s")
        topup = await rig.wait((await _top_up(rig, shop, 1)).id)  # declined: "failed"
        [row] = await settled(rig, topup.id, count=1)
        posts = got.to("/s")
        assert (row.state, row.last_status, row.last_error) == ("given_up", 503, "HTTP 503")
        assert row.attempts == len(posts) >= 3
        assert row.last_attempt_at and row.last_attempt_at >= row.retry_until
        gaps = [b.at - a.at for a, b in zip(posts, posts[1:], strict=False)]
        # 0.5, 1, 2 s nominal (doubling, capped at 2 s), each ±20 %, the last cut short by the
        # window's end; a busy machine only makes them longer (so: lower bounds).
        assert gaps[0] >= FIRST_S * 0.8 and gaps[1] >= 2 * FIRST_S * 0.8
        assert json.loads(posts[0].body)["type"] == "topup.failed"
        [logged] = await callbacks.deliveries(rig.core, party_id=shop.id, state="given_up")
        assert logged.id == row.id and callbacks.delivery_dict(logged)["next_attempt_at"] is None
        # The receiver is fixed; the delivery is sent again on request.
        got.status["/s"] = 200
        await callbacks.resend(
            rig.core, rig.queue, actor=ADMIN, party_id=shop.id, delivery_id=row.id or 0
        )
        [again] = await settled(rig, topup.id, count=1)
    assert (again.state, again.attempts) == ("delivered", len(posts) + 1)
    assert len(got.events("/s")) == 1


async def test_removing_the_endpoint_gives_its_pending_deliveries_up(rig: Rig) -> None:
    shop = await _shop(rig)
    assert shop.id
    async with receiver(status={"/s": 503}) as got:
        await _set(rig, shop.id, f"{got.url}/s")
        topup = await rig.wait((await _top_up(rig, shop, 0)).id)
        await got.wait_posts("/s", 1)
        assert await callbacks.remove(rig.core, actor=ADMIN, party_id=shop.id)
        [row] = await settled(rig, topup.id, count=1)
    assert (row.state, row.last_error) == ("given_up", "no endpoint registered")
    assert row.attempts == len(got.to("/s")) + 1  # the last attempt sent nothing


async def test_job_lost_after_commit_is_swept_and_sent_once(rig: Rig) -> None:
    """The outbox row committed, the worker gone before it enqueued: the sweeper finds it."""
    shop = await _shop(rig)
    assert shop.id
    topup = await rig.wait((await _top_up(rig, shop, 0)).id)  # no endpoint yet: nothing owed
    assert await rows(rig, topup.id) == []
    async with receiver() as got:
        await _set(rig, shop.id, f"{got.url}/s")
        async with rig.core.transaction() as session:  # what finish.py writes; no enqueue
            await outbox.owe(session, [topup.id], window_s=60)
        [row] = await settled(rig, topup.id, count=1)  # sweeper every 1 s, stale after 1 s
        assert (row.state, row.attempts) == ("delivered", 1)
        await asyncio.sleep(2.5)  # two more sweeps: nothing is sent again
        assert len(got.to("/s")) == 1


async def test_rotation_signs_with_both_secrets_and_no_secret_is_logged_or_stored(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    verify = doc_verifier()
    configure(level="DEBUG", json=False)
    shop = await _shop(rig)
    assert shop.id
    async with receiver(fail_first={"/s": 1}) as got:
        old = await _set(rig, shop.id, f"{got.url}/s")
        new = await callbacks.rotate_secret(rig.core, actor=ADMIN, party_id=shop.id)
        assert new.endpoint.previous_secret_until is not None
        topup = await rig.wait((await _top_up(rig, shop, 0)).id)
        await settled(rig, topup.id, count=1)
        post = got.to("/s")[-1]
        assert post.headers["AirGate-Signature"].count("v1=") == 2
        assert verify(new.secret, post.headers, post.body)
        assert verify(old.secret, post.headers, post.body)
        # The grace period over: only the new secret signs.
        async with rig.core.transaction() as session:
            await session.execute(
                update(CallbackEndpoint)
                .values(previous_until=utcnow())
                .where(
                    CallbackEndpoint.party_id == shop.id  # type: ignore[arg-type]
                )
            )
        later = await rig.wait((await _top_up(rig, shop, 6)).id)
        await settled(rig, later.id, count=1)
        last = got.to("/s")[-1]
        assert last.headers["AirGate-Signature"].count("v1=") == 1
        assert verify(new.secret, last.headers, last.body)
        assert not verify(old.secret, last.headers, last.body)
    logs = "".join(capsys.readouterr())
    assert "callback.attempt" in logs  # the attempts were logged …
    async with rig.core.sessions() as session:
        stored = [repr(r) for r in (await session.execute(select(CallbackEndpoint))).scalars()]
    names = [k async for k in rig.queue.redis.scan_iter()]
    values = [await rig.queue.redis.dump(k) for k in names]
    async with rig.core.sessions() as session:
        [row] = (await session.execute(select(CallbackEndpoint))).scalars()
    assert row.secret_seed not in repr(row) and row.previous_seed not in repr(row)
    for secret in (old.secret, new.secret):  # … and no secret anywhere
        assert secret and secret not in logs and secret.removeprefix("whsec_") not in logs
        assert not any(secret in r for r in stored)
        assert not any(secret.encode() in (v or b"") for v in values)


@pytest.mark.slow
async def test_worker_killed_mid_post_delivers_each_event_once_to_a_deduplicating_receiver(
    rig_no_worker: Rig, tmp_path: Path
) -> None:
    """``airgate worker`` dies while the receiver holds its POST: the attempt was never recorded,
    so a second worker sends it again (arq re-runs the job); the receiver sees one event twice."""
    from tests.helpers import killed_at_exit
    from tests.lifecycle.test_crash import start_worker, worker_env

    rig = rig_no_worker
    env = worker_env(rig, tmp_path)
    env.update({f"AIRGATE_{k.upper()}": str(v).lower() for k, v in CALLBACKS_FAST.items()})
    shop = await _shop(rig)
    assert shop.id
    async with receiver(hold=asyncio.Event()) as got:
        await _set(rig, shop.id, f"{got.url}/s")
        with killed_at_exit(start_worker(env, tmp_path)) as first:
            topup = await _top_up(rig, shop, 0)
            await asyncio.wait_for(got.arrived.wait(), 30)  # the POST is in flight
            first.kill()
            first.wait(10)
        assert got.hold is not None
        got.hold.set()  # its answer goes to a dead socket
        got.hold = None
        [row] = await rows(rig, topup.id)
        assert (row.state, row.attempts) == ("pending", 0)
        with killed_at_exit(start_worker(env, tmp_path)) as second:
            try:
                [row] = await settled(rig, topup.id, count=1, timeout_s=90)
            finally:
                second.terminate()
                assert second.wait(20) == 0
    assert (row.state, row.attempts) == ("delivered", 1)
    assert len(got.posts) == 2 and len(got.events("/s")) == 1
    assert got.posts[0].body == got.posts[1].body


async def test_a_topup_sent_by_api_calls_back_with_the_resource_the_api_shows(rig: Rig) -> None:
    """POST /topups, the worker delivers, the receiver's ``data`` is GET /topups/{id} verbatim."""
    from aiohttp.test_utils import TestClient, TestServer

    from airgate.server import build_app
    from core.models import Scope
    from core.services import apikeys

    verify = doc_verifier()
    shop = await _shop(rig)
    made = await apikeys.create(rig.core, actor=ADMIN, party_ref=shop.id or 0, scopes=list(Scope))
    headers = {"Authorization": f"Bearer {made.key}"}
    async with receiver() as got, TestClient(TestServer(build_app(rig.settings))) as client:
        put = await client.put("/api/v1/callback", json={"url": f"{got.url}/s"}, headers=headers)
        secret = (await put.json())["secret"]
        sent = await client.post(
            "/api/v1/topups",
            json={"msisdn": "0712345670", "amount_minor": 5000},
            headers={**headers, "Idempotency-Key": "cb-1"},
        )
        assert sent.status == 202, await sent.text()
        topup_id = (await sent.json())["id"]
        [post] = await got.wait_posts("/s", 1)
        shown = await (await client.get(f"/api/v1/topups/{topup_id}", headers=headers)).json()
        log = await (await client.get("/api/v1/callback", headers=headers)).json()
        # A test event, sent at once: signed the same way, not in the log.
        pinged = await client.post(
            "/api/v1/callback/ping", headers={**headers, "Idempotency-Key": "ping-1"}
        )
        answer = await pinged.json()
        got.status["/s"] = 503
        failed = await client.post(
            "/api/v1/callback/ping", headers={**headers, "Idempotency-Key": "ping-2"}
        )
        refused = await failed.json()
    ping = got.to("/s")[1]
    assert (answer["ok"], answer["status"], answer["error"]) == (True, 200, None)
    assert answer["event_id"] == ping.headers["AirGate-Event-Id"] != refused["event_id"]
    assert verify(secret, ping.headers, ping.body) and json.loads(ping.body)["type"] == "ping"
    assert (refused["ok"], refused["status"], refused["error"]) == (False, 503, "HTTP 503")
    assert verify(secret, post.headers, post.body)
    event = json.loads(post.body)
    assert event["data"] == shown and shown["state"] == "delivered"
    [row] = log["recent"]
    assert (row["reference"], row["event_id"]) == (topup_id, event["id"])
