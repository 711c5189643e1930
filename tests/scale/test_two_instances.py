"""Two ``serve`` and two ``worker`` behind HAProxy (tests/scale/harness.py): USSD sessions whose
hops go to both instances all complete, and each top-up is delivered exactly once.

Half the sessions are sent to the two serves directly, hop by hop in turn (so every one of them
crosses instances at every hop: a session's state lives in Redis, not in a process); the other
half go through the proxy's round robin, which says per answer which serve gave it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from core.context import Core
from core.models import TopupState
from tests.conftest import TEST_PEPPER
from tests.helpers import PIN, assert_ledger_ok, chain, eventually, give_retailer_stock
from tests.scale.harness import SERVES, USSD_SECRET, Cluster, Walk, cluster, plan, topup_rows, walk

RETAILERS = 5
PER_RETAILER = 10  # 50 sessions at once
AMOUNT_MAJOR = 50


def customer(i: int) -> str:
    """A distinct Safaricom number per session (a repeat within minutes asks to confirm it),
    ending in 0: the sandbox delivers it at once."""
    return f"07122{i:04d}0"


async def seed(core: Core) -> None:
    distributor, shops = await chain(core, retailers=RETAILERS)
    for i, shop in enumerate(shops):
        # Stock for twice the sessions: nothing here is refused for want of it.
        face = 2 * PER_RETAILER * AMOUNT_MAJOR * 100
        await give_retailer_stock(core, distributor, shop, face, f"r{i}")


async def journey(the: Cluster, http: aiohttp.ClientSession, i: int, *, direct: bool) -> Walk:
    """Session ``i``: menu, airtime, number, amount, PIN. Direct: hop k to serve (i + k) % 2."""

    def url_for(k: int) -> str:
        return the.serve_urls[SERVES[(i + k) % 2]] if direct else the.proxy_url

    return await walk(
        http,
        url_for,
        session_id=f"ATUid_scale_{i}",
        phone=f"+254711{i % RETAILERS + 1:06d}",
        inputs=("1", customer(i), str(AMOUNT_MAJOR), PIN),
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_sessions_alternating_between_two_serves_complete_and_deliver_once(
    scale_db: str, redis_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    planned = plan(tmp_path, database_url=scale_db, redis_url=redis_url)
    async with cluster(planned, seed=seed) as (the, core, http):
        up = time.monotonic()
        try:
            sessions = RETAILERS * PER_RETAILER
            journeys = await asyncio.gather(
                *(journey(the, http, i, direct=i % 2 == 0) for i in range(sessions))
            )
            hopped = time.monotonic()
            for i, walked in enumerate(journeys):
                expected = f"END Top-up of KES {AMOUNT_MAJOR} to {customer(i)} accepted."
                assert walked.hops[-1].screen.startswith(expected), (i, walked)
            # Direct sessions crossed at every hop by construction; proxied ones as the round
            # robin fell: both serves answered them, and most sessions saw both.
            proxied = [journeys[i].hops for i in range(1, sessions, 2)]
            by_serve = [h.served_by for hops in proxied for h in hops]
            assert all(by_serve.count(name) for name in SERVES), by_serve
            crossed = sum(len({h.served_by for h in hops}) == 2 for hops in proxied)
            assert crossed >= len(proxied) // 2, [[h.served_by for h in j] for j in proxied]
            # Each serve counted what it answered: together every hop, each a share.
            sent = sum(len(walked.hops) for walked in journeys)
            counted = await the.hops_counted(http)
            assert sum(counted.values()) == sent, counted
            assert min(counted.values()) >= sent // 4, counted
            refs = [w.hops[-1].screen.split("Ref ", 1)[1].split(".", 1)[0] for w in journeys]

            async def all_delivered() -> bool:
                rows = await topup_rows(core)
                return len(rows) == sessions and all(r.state == TopupState.DELIVERED for r in rows)

            await eventually(all_delivered, what="every top-up delivered", timeout_s=120)
            delivered = time.monotonic()
            assert sorted(refs) == sorted(r.id for r in await topup_rows(core))
            for ref in refs:
                stats = await the.sandbox_stats(http, ref)
                assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1)
            totals = await the.sandbox_stats(http)
            assert (totals["delivered"], totals["double_deliveries"]) == (sessions, 0), totals
            await assert_ledger_ok(core)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{the.logs()}") from None
        logs = the.full_logs()  # every process's, the proxy's included
        assert "Traceback" not in logs, the.logs()
        # No secret, nor any customer's whole number (national or international), in any of them.
        for secret in (USSD_SECRET, TEST_PEPPER):
            assert secret not in logs
        for i in range(sessions):
            assert customer(i)[1:] not in logs, customer(i)
    print(
        f"\nstart {up - started:.1f} s, {sessions} sessions' hops {hopped - up:.1f} s,"
        f" delivered {delivered - hopped:.1f} s later; hops per serve {counted},"
        f" proxied sessions on both serves {crossed}/{len(proxied)};"
        f" hops tried again (out of time or busy) {sum(w.retries for w in journeys)}"
    )
