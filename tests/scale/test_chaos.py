"""Chaos runs (issue 14) on a production-shaped AirGate (tests/scale/harness.py: two ``serve``
behind HAProxy, two ``worker``, the sandbox aggregator), each bounded well under five minutes.

A: USSD journeys while ``serve`` and ``worker`` processes are SIGKILLed in turn and restarted at
once (as a supervisor would), with the aggregator answering ~10 % of sends with a 503 and ~10 %
with a decline. B: the same journeys sent to the two serves directly while PostgreSQL (a private
cluster) is stopped and started again and Redis (a private server) is paused, the processes left
to recover by themselves.

What both prove afterwards (:func:`audit`), with every customer number used by one journey only:

- nothing lost: every "accepted" screen's reference is a top-up row, and every row reaches a final
  state; a journey told anything else at its PIN hop has no row, now or later;
- nothing twice: the aggregator delivered each reference at most once, exactly the delivered rows;
- nothing half-written: the ledger verifies, every top-up has its reservation and every
  reservation its top-up, resolved as the top-up ended; each retailer's stock moved equals what
  was delivered plus what is still held.

Figures (journeys, kills, outages, recovery times, hop latency) are printed (``-s`` shows them).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select
from sqlmodel import col

from core.context import Core
from core.db import make_engine, upgrade
from core.i18n import t
from core.ledger.generic import account_balances
from core.models import AccountKind, Party, Reservation, ReservationStatus, TopupState
from core.models.topup import FINAL_STATES
from core.money import airtime_asset
from core.services.verify import verify
from core.settings import Settings, load_settings
from tests.helpers import PIN, SAFARICOM, chain, eventually, give_retailer_stock
from tests.private_postgres import require
from tests.redis_servers import private_redis
from tests.scale.harness import (
    HAPROXY,
    RESUME_OFFER,
    SERVES,
    START_OVER,
    TRY_AGAIN,
    WORKERS,
    Cluster,
    Hop,
    cluster,
    hop,
    plan,
    topup_rows,
)
from tests.scale.postgres_server import PG_BIN, private_postgres

RETAILERS = 20
AMOUNT_MAJOR = 50
STOCK_MINOR = 200 * AMOUNT_MAJOR * 100  # per retailer: more than any run asks of it
# Short provider and job time-outs: a killed worker's job is run again after job time-out + 10 s
# (core/worker.py), and an unknown is asked about again after 1 s.
FAST_ENV = {
    "AIRGATE_PROVIDER_TIMEOUT_S": "2",
    "AIRGATE_PROVIDER_CONNECT_TIMEOUT_S": "1",
    "AIRGATE_CALLBACK_TIMEOUT_S": "2",
    "AIRGATE_TOPUP_STATUS_BACKOFF_S": "[1]",
    "AIRGATE_SWEEPER_INTERVAL_S": "2",
    "AIRGATE_SWEEPER_STALE_S": "2",
    "AIRGATE_LOG_LEVEL": "WARNING",
}
FAULTS = ("--decline-rate", "0.1", "--error-rate", "0.1", "--seed", "14")
SETTLE_S = 120  # after the load: every top-up final (a killed worker's job waits ~21 s)
ACCEPTED = "END Top-up of KES "
# What a user may be told instead, nothing done: out of time, the payer's queue full, a store that
# does not answer (ARCHITECTURE: "try again").
NOT_NOW = (*TRY_AGAIN, t("en", "error.store_unavailable"))
# AIRGATE_HOP_DEADLINE_S's default (4 s): "a USSD gateway waits a few seconds"
HOP_DEADLINE_S: float = Settings.model_fields["hop_deadline_s"].default
DEADLINE_SLACK_S = 2.0  # a loaded two-core machine shared with other runs


def customer(i: int) -> str:
    """Journey ``i``'s own Safaricom number, ending in 0 (the sandbox delivers it at once, bar
    its random faults): a row is found by number, and a repeat never asks to confirm it."""
    return f"0712{i:05d}0"


def international(national: str) -> str:
    return "+254" + national[1:]


def shop_phone(user: int) -> str:
    """User ``user``'s retailer (tests.helpers.chain's numbers): one phone per user."""
    assert user < RETAILERS
    return f"+254711{user + 1:06d}"


async def seed(core: Core) -> None:
    distributor, shops = await chain(core, retailers=RETAILERS)
    for n, shop in enumerate(shops):
        await give_retailer_stock(core, distributor, shop, STOCK_MINOR, f"chaos-{n}")


# -- journeys -----------------------------------------------------------------------------------


@dataclass
class Journey:
    """One USSD session as the client saw it: the hops answered (with when each started), and
    what cut it short if no screen came (a transport error, an HTTP error from the proxy)."""

    i: int
    hops: list[tuple[float, Hop]] = field(default_factory=list)
    cut: str | None = None
    cut_at: float = 0.0  # when the hop that got no screen started …
    cut_end: float = 0.0  # … and when it gave up
    pin_sent: bool = False

    @property
    def screen(self) -> str:
        return self.hops[-1][1].screen if self.hops else ""

    @property
    def accepted(self) -> bool:
        return self.screen.startswith(ACCEPTED) and " accepted. Ref " in self.screen

    @property
    def ref(self) -> str:
        return self.screen.split(" Ref ", 1)[1].split(".", 1)[0]

    @property
    def told_no_topup(self) -> bool:
        """Its PIN hop got a screen other than "accepted": no top-up may exist for it."""
        return self.pin_sent and self.cut is None and not self.accepted


REDIAL_S = 1.0


async def journey(
    http: aiohttp.ClientSession, i: int, phone: str, url_for_hop: Callable[[int, int], str]
) -> Journey:
    """Menu, airtime, number, amount, PIN, from ``phone`` (one journey at a time per phone, as on
    a handset): hop k goes to ``url_for_hop(i, k)``. A journey cut short earlier on this phone is
    offered to continue; the user starts over. A hop that gets no screen ends the journey (the
    user hangs up; nothing is retried)."""
    done = Journey(i)
    path: list[str] = []
    inputs = [None, "1", customer(i), str(AMOUNT_MAJOR), PIN]
    k = 0
    while inputs:
        typed = inputs.pop(0)
        if typed is not None:
            path.append(typed)
        done.pin_sent = not inputs
        started = time.monotonic()
        try:
            answered = await hop(
                http, url_for_hop(i, k), session_id=f"ATUid_chaos_{i}", phone=phone, path=path
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            done.cut = f"{type(exc).__name__} {exc} after {time.monotonic() - started:.3f} s"
            done.cut_at, done.cut_end = started, time.monotonic()
            break
        if answered.status != 200:
            done.cut = f"HTTP {answered.status}"
            done.cut_at, done.cut_end = started, started + answered.seconds
            break
        done.hops.append((started, answered))
        if answered.screen.startswith("END"):
            break
        if k == 0 and answered.screen.startswith(f"CON {RESUME_OFFER}"):
            inputs.insert(0, START_OVER)
        k += 1
    return done


async def run_journeys(
    make: Callable[[int, int], Awaitable[Journey]], *, users: int, until: Callable[[int], bool]
) -> list[Journey]:
    """``users`` users, each starting the next journey when theirs ends (``make(journey,
    user)``), while ``until(journeys started)`` is false."""
    counter = itertools.count()
    journeys: list[Journey] = []

    async def user(u: int) -> None:
        while not until(i := next(counter)):
            journeys.append(done := await make(i, u))
            if not done.accepted:
                await asyncio.sleep(REDIAL_S)  # a person takes a moment to dial again

    await asyncio.gather(*(user(u) for u in range(users)))
    return sorted(journeys, key=lambda j: j.i)


def unexpected_screens(journeys: Sequence[Journey]) -> list[str]:
    """Screens that are neither a step of the journey (CON), nor "accepted", nor "not now"."""
    return [
        f"journey {j.i} hop {k}: {h.screen!r}"
        for j in journeys
        for k, (_, h) in enumerate(j.hops)
        if not h.screen.startswith("CON ")
        and not (h is j.hops[-1][1] and j.accepted)
        and not any(text in h.screen for text in NOT_NOW)
    ]


def leaked_numbers(the: Cluster, journeys: Sequence[Journey]) -> list[str]:
    """Full customer and retailer numbers found in what serve and worker logged, through kills
    and outages, tracebacks included (the proxy's and the sandbox's logs are the test's own)."""
    logged = "".join(
        (the.directory / f"{name}.log").read_text(errors="replace") for name in (*SERVES, *WORKERS)
    )
    numbers = {shop_phone(u) for u in range(RETAILERS)}
    numbers |= {n for j in journeys for n in (customer(j.i), international(customer(j.i)))}
    return sorted(n for n in numbers if n in logged)


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# -- the audit ----------------------------------------------------------------------------------


@dataclass
class Audit:
    topups: int
    delivered: int
    failed: int
    sandbox: dict[str, object]


async def settle(core: Core) -> None:
    """Until every top-up is final (or fail after SETTLE_S)."""

    async def all_final() -> bool:
        return all(r.state in FINAL_STATES for r in await topup_rows(core))

    await eventually(all_final, what="every top-up final", timeout_s=SETTLE_S, every_s=0.5)


async def audit(
    the: Cluster, core: Core, http: aiohttp.ClientSession, journeys: list[Journey]
) -> Audit:
    """The invariants of the module docstring, on the database and the sandbox's counters."""
    rows = await topup_rows(core)
    by_number = {r.msisdn: r for r in rows}
    numbers = {international(customer(j.i)): j for j in journeys}
    twice = [
        (
            r.id,
            r.msisdn,
            r.created_at.isoformat(),
            r.state,
            numbers[r.msisdn].hops,
            numbers[r.msisdn].cut,
        )
        for r in rows
        if by_number[r.msisdn] is not r or sum(x.msisdn == r.msisdn for x in rows) > 1
    ]
    assert not twice, f"one journey made two top-ups: {twice}"
    assert set(by_number) <= set(numbers), set(by_number) - set(numbers)
    for j in journeys:
        row = by_number.get(international(customer(j.i)))
        if j.accepted:
            assert row is not None and row.id == j.ref, (j.i, j.screen, row)
        elif j.told_no_topup:
            assert row is None, (j.i, j.screen, row)
        elif not j.pin_sent:
            assert row is None, (j.i, j.cut, row)
    assert not [r for r in rows if r.state not in FINAL_STATES], "not final"

    delivered = {r.id for r in rows if r.state == TopupState.DELIVERED}
    for r in rows:
        stats = await the.sandbox_stats(http, r.id)
        expected = 1 if r.id in delivered else 0
        assert stats["deliveries_by_reference"] == expected, (r.id, r.state, stats)
    totals = await the.sandbox_stats(http)
    assert totals["double_deliveries"] == 0, totals
    assert totals["delivered"] == len(delivered), (totals, len(delivered))

    report = await verify(core.engine)
    assert report.ok, report.problems
    async with core.sessions() as session:
        holds = {r.id: r for r in (await session.execute(select(Reservation))).scalars()}
        chain_parties = select(Party).where(col(Party.msisdn).like("+254711%"))
        shops = list((await session.execute(chain_parties)).scalars())
        balances = {s.id: await account_balances(session, s.id or 0) for s in shops}
    assert set(holds) == {r.id for r in rows}, "a reservation without its top-up, or the reverse"
    resolved = {
        TopupState.DELIVERED: ReservationStatus.CAPTURED,
        TopupState.FAILED: ReservationStatus.RELEASED,
    }
    for r in rows:
        assert holds[r.id].status == resolved.get(
            TopupState(r.state), ReservationStatus.RESERVED
        ), r.id
    asset = airtime_asset(SAFARICOM)
    retailers = [s for s in shops if s.msisdn != "+254711900000"]  # not the distributor
    assert len(retailers) == RETAILERS
    for shop in retailers:
        got = balances[shop.id]
        main, held, sold = (
            got.get((asset, k), 0)
            for k in (AccountKind.MAIN, AccountKind.INFLIGHT, AccountKind.SOLD)
        )
        mine = [r for r in rows if r.party_id == shop.id]
        assert STOCK_MINOR - main == sold + held, (shop.msisdn, main, held, sold)
        assert sold == sum(r.amount_minor for r in mine if r.id in delivered), shop.msisdn
        assert held == sum(r.amount_minor for r in mine if r.state not in FINAL_STATES), shop.msisdn
    return Audit(len(rows), len(delivered), len(rows) - len(delivered), totals)


# -- A: SIGKILLs under aggregator faults --------------------------------------------------------

LOAD_S = 60  # journeys are started for this long (at most JOURNEYS_MAX)
JOURNEYS_MAX = 1_000
USERS_A = 10
KILL_GAP_S = (2.0, 5.0)  # between two kills, drawn at random
PROXY_READMITS_S = 1.5  # HAProxy's health checks take a serve back: rise 1 after 0.5 s checks


@dataclass
class Kill:
    name: str
    at: float
    back_after_s: float  # SIGKILL to ready again (a serve's /readyz, a worker taking jobs)


async def chaos(the: Cluster, http: aiohttp.ClientSession, stop: asyncio.Event) -> list[Kill]:
    """SIGKILL serves and workers until ``stop``, each restarted at once (a supervisor's job):
    the serves in turn, one only while the other is up (the users always have one); the workers
    in turn, independently (while both are down, jobs wait). A process is killed again only once
    it is back."""
    back: list[asyncio.Task[Kill]] = []

    async def restarted(name: str, at: float) -> Kill:
        await the.wait_ready(http, (name,))
        return Kill(name, at, time.monotonic() - at)

    async def killer(names: tuple[str, ...], rng: random.Random) -> None:
        for name in itertools.cycle(names):
            try:
                await asyncio.wait_for(stop.wait(), rng.uniform(*KILL_GAP_S))
                return
            except TimeoutError:
                pass
            await the.wait_ready(http, SERVES if name in SERVES else (name,))
            at = time.monotonic()
            assert the.kill(name) == -9, f"{name} was not running when killed"
            the.start(name)
            back.append(asyncio.create_task(restarted(name, at)))

    await asyncio.gather(killer(SERVES, random.Random(14)), killer(WORKERS, random.Random(41)))
    return sorted(await asyncio.gather(*back), key=lambda k: k.at)


@pytest.mark.slow
@pytest.mark.timeout(290)
async def test_chaos_sigkills_under_aggregator_faults_lose_nothing_and_send_nothing_twice(
    scale_db: str, redis_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    planned = plan(
        tmp_path, database_url=scale_db, redis_url=redis_url, env=FAST_ENV, sandbox_args=FAULTS
    )
    async with cluster(planned, seed=seed) as (the, core, http):
        try:
            up = time.monotonic()
            stop = asyncio.Event()
            killing = asyncio.create_task(chaos(the, http, stop))
            journeys = await run_journeys(
                lambda i, u: journey(http, i, shop_phone(u), lambda _i, _k: the.proxy_url),
                users=USERS_A,
                until=lambda i: (
                    i >= JOURNEYS_MAX or time.monotonic() > up + LOAD_S or killing.done()
                ),
            )
            stop.set()
            kills = await killing
            loaded = time.monotonic()
            await settle(core)
            settled = time.monotonic()
            assert not unexpected_screens(journeys), unexpected_screens(journeys)[:10]
            # A journey is cut only by a serve's death: its hop was in flight at a serve's kill.
            serve_down = [
                (k.at, k.at + k.back_after_s + PROXY_READMITS_S) for k in kills if k.name in SERVES
            ]
            cut = [j for j in journeys if j.cut]
            stray = [
                (j.i, j.cut, round(j.cut_at - up, 2), len(j.hops))
                for j in cut
                if not any(j.cut_at <= b and a <= j.cut_end for a, b in serve_down)
            ]
            assert not stray, (
                stray,
                [(k.name, round(k.at - up, 2), round(k.back_after_s, 2)) for k in kills],
            )
            found = await audit(the, core, http, journeys)
            assert not leaked_numbers(the, journeys), leaked_numbers(the, journeys)
            for name in (*SERVES, *WORKERS, "sandbox", "haproxy"):
                assert the.processes[name].poll() is None, f"{name} exited"
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{the.logs()}") from None
    accepted = sum(j.accepted for j in journeys)
    quiet = [
        h.seconds for j in journeys for s, h in j.hops
        if not any(s <= b and a <= s + h.seconds for a, b in serve_down)
    ]  # fmt: skip
    # Enough happened for the run to mean something: kills of each kind, both faults injected.
    assert {k.name for k in kills} == {*SERVES, *WORKERS}, kills
    assert found.sandbox["errors_5xx"] and found.failed, found
    assert accepted >= 0.8 * len(journeys), (accepted, [j.cut for j in cut])
    print(
        f"\nchaos A: {len(journeys)} journeys ({accepted} accepted, {len(cut)} cut by a kill),"
        f" {len(kills)} SIGKILLs ({sum(k.name in SERVES for k in kills)} serve), start"
        f" {up - started:.0f} s, load {loaded - up:.0f} s, all final"
        f" {settled - loaded:.0f} s later;"
        f" back after a kill p50 {p([k.back_after_s for k in kills], 0.5):.1f} s max"
        f" {max(k.back_after_s for k in kills):.1f} s; hop latency away from serve kills p50"
        f" {1000 * p(quiet, 0.5):.0f} ms p99 {1000 * p(quiet, 0.99):.0f} ms;"
        f" {found.topups} top-ups: {found.delivered} delivered, {found.failed} failed;"
        f" sandbox {found.sandbox}"
    )


# -- B: PostgreSQL restarted and Redis paused ---------------------------------------------------

USERS_B = 6  # phones 1-6; the recovery probes dial from phones 7 and 8
WARM_S = 5.0
PG_DOWN_S = 6.0  # stopped (fast: every connection dropped) this long, then started again
REDIS_PAUSE_S = 8.0  # SIGSTOP: twice the hop deadline
BETWEEN_S = 3.0
RECOVER_S = 20.0  # an outage over, each serve takes a whole journey to "accepted" within this
PROBES = 90_000  # journey numbers of the recovery probes (customer numbers of their own)


@dataclass
class Outage:
    what: str
    start: float
    end: float
    recovered_after_s: dict[str, float] = field(default_factory=dict)  # serve → after the end
    ready_said: dict[str, int] = field(default_factory=dict)  # serve → /readyz status in it

    def overlaps(self, start: float, end: float) -> bool:
        return start <= self.end and self.start <= end


async def readyz(http: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    started = time.monotonic()
    async with http.get(f"{url}/readyz") as response:
        return response.status, time.monotonic() - started


async def recovered(
    http: aiohttp.ClientSession, url: str, *, phone: str, since: float, probes: list[Journey]
) -> float:
    """Seconds from ``since`` until a whole journey sent to ``url`` is accepted (each probe a
    journey of its own, numbered from PROBES up)."""
    while True:
        probe = Journey(PROBES + len(probes))
        probes.append(probe)  # numbered before the first await: concurrent probes never share one
        answered = await journey(http, probe.i, phone, lambda _i, _k: url)
        probes[probes.index(probe)] = answered
        if answered.accepted:
            return time.monotonic() - since
        assert time.monotonic() < since + RECOVER_S, (url, answered.cut, answered.screen)
        await asyncio.sleep(0.2)


async def recover_all(
    the: Cluster, http: aiohttp.ClientSession, outage: Outage, probes: list[Journey]
) -> None:
    found = await asyncio.gather(
        *(
            recovered(http, the.serve_urls[name], phone=shop_phone(USERS_B + n), since=outage.end,
                      probes=probes)
            for n, name in enumerate(SERVES)
        )
    )  # fmt: skip
    outage.recovered_after_s = dict(zip(SERVES, found, strict=True))


async def fresh_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(load_settings(database_url=url).database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


@pytest.fixture
def _binaries() -> None:
    """B runs its own PostgreSQL (no shared server needed) and HAProxy: skipped, saying so,
    without them (failed where PostgreSQL is required: AIRGATE_TEST_REQUIRE_POSTGRES)."""
    require(f"PostgreSQL 15's pg_ctl in {PG_BIN}", present=(PG_BIN / "pg_ctl").exists())
    require(f"HAProxy at {HAPROXY} (Debian's haproxy package)", present=Path(HAPROXY).exists())


@pytest.mark.slow
@pytest.mark.timeout(290)
async def test_chaos_postgres_restarted_and_redis_paused_every_process_recovers_by_itself(
    tmp_path: Path, _binaries: None
) -> None:
    with private_postgres() as pg, private_redis() as redis:
        database = await fresh_database(pg.url(), "airgate")
        planned = plan(
            tmp_path / "cluster", database_url=database, redis_url=redis.url, env=FAST_ENV
        )
        async with cluster(planned, seed=seed) as (the, core, http):
            pids = {name: p.pid for name, p in the.processes.items()}
            direct = [the.serve_urls[name] for name in SERVES]
            stop = asyncio.Event()
            outages: list[Outage] = []
            probes: list[Journey] = []
            try:
                up = time.monotonic()
                load = asyncio.create_task(
                    run_journeys(
                        lambda i, u: journey(
                            http, i, shop_phone(u), lambda i, k: direct[(i + k) % 2]
                        ),
                        users=USERS_B,
                        until=lambda _i: stop.is_set(),
                    )
                )
                await asyncio.sleep(WARM_S)

                pg_down = Outage("postgresql", time.monotonic(), 0.0)
                await asyncio.to_thread(pg.stop, "fast")
                await asyncio.sleep(PG_DOWN_S / 2)
                for name in SERVES:
                    pg_down.ready_said[name], _ = await readyz(http, the.serve_urls[name])
                await asyncio.sleep(PG_DOWN_S / 2)
                await asyncio.to_thread(pg.start)
                pg_down.end = time.monotonic()
                outages.append(pg_down)
                await recover_all(the, http, pg_down, probes)
                await asyncio.sleep(BETWEEN_S)

                paused = Outage("redis", time.monotonic(), 0.0)
                redis.pause()
                await asyncio.sleep(REDIS_PAUSE_S / 2)
                for name in SERVES:
                    paused.ready_said[name], _ = await readyz(http, the.serve_urls[name])
                await asyncio.sleep(REDIS_PAUSE_S / 2)
                redis.resume()
                paused.end = time.monotonic()
                outages.append(paused)
                await recover_all(the, http, paused, probes)
                await asyncio.sleep(BETWEEN_S)

                stop.set()
                journeys = await load
                loaded = time.monotonic()
                await settle(core)
                settled = time.monotonic()

                # Every hop was answered, in time, with a step or "not now": during the outages too.
                everything = [*journeys, *probes]
                assert not [(j.i, j.cut, round(j.cut_at - up, 1)) for j in everything if j.cut]
                late = [
                    (j.i, round(s - up, 1), round(h.seconds, 1), h.screen[:60]) for j in everything
                    for s, h in j.hops if h.seconds > HOP_DEADLINE_S + DEADLINE_SLACK_S
                ]  # fmt: skip
                assert not late, late
                assert not unexpected_screens(everything), unexpected_screens(everything)[:10]
                for outage in outages:
                    assert set(outage.ready_said.values()) == {503}, outage
                found = await audit(the, core, http, everything)
                assert not leaked_numbers(the, everything), leaked_numbers(the, everything)
                # Nobody restarted anything: the same processes, all still running.
                assert {n: p.pid for n, p in the.processes.items()} == pids
                for name, process in the.processes.items():
                    assert process.poll() is None, f"{name} exited {process.returncode}"
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{the.logs()}") from None
    during = {
        o.what: [h for j in journeys for s, h in j.hops if o.overlaps(s, s + h.seconds)]
        for o in outages
    }
    quiet = [
        h.seconds for j in journeys for s, h in j.hops
        if not any(o.overlaps(s, s + h.seconds + RECOVER_S) for o in outages)
    ]  # fmt: skip
    print(
        f"\nchaos B: {len(journeys)} journeys + {len(probes)} probes"
        f" ({sum(j.accepted for j in everything)} accepted); "
        + "; ".join(
            f"{o.what} out {o.end - o.start:.1f} s: {len(during[o.what])} hops in it, not now"
            f" {sum(any(x in h.screen for x in NOT_NOW) for h in during[o.what])}, slowest"
            f" {max((h.seconds for h in during[o.what]), default=0):.1f} s, readyz {o.ready_said},"
            f" a journey accepted again after {o.recovered_after_s}"
            for o in outages
        )
        + f"; hop p50 {1000 * p(quiet, 0.5):.0f} ms p99 {1000 * p(quiet, 0.99):.0f} ms away from"
        f" outages; all final {settled - loaded:.0f} s after the load; {found.topups} top-ups,"
        f" {found.delivered} delivered"
    )
