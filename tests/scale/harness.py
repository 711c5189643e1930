"""A production-shaped AirGate on one machine, for the multi-process tests (issue 14).

:class:`Cluster` runs, as real processes from the installed ``airgate`` command: the stand-in
aggregator (``airgate sandbox``), two ``airgate serve`` on ports of their own, two
``airgate worker``, and Debian's HAProxy in front of the two serves (round robin, no stickiness,
health-checked on ``/readyz``; its config is generated into the test's directory). The database
and Redis are given to it (a PostgreSQL database of the test's own, see :func:`scale_database`;
the suite's Redis DB), so a test that restarts or pauses them can bring its own.

Invariants:

- Every process it starts is killed and reaped when the ``async with`` block ends, however it
  ends (:func:`tests.helpers.killed_at_exit`); :meth:`Cluster.kill` and :meth:`Cluster.start` stop
  and restart one by name in between (the chaos test's SIGKILLs).
- Each process writes to ``<dir>/<name>.log``; :meth:`Cluster.logs` is what a failure shows.
- Every answer through the proxy names the serve that gave it (``X-Served-By``), so a test can
  prove that the hops of a session really went to both instances.
- Processes open few PostgreSQL connections (3 + 2 pooled, 2 lookups each: README, "Tests").
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import select

from core.context import Core, open_core
from core.db import make_engine, upgrade
from core.models import Topup
from core.settings import Settings, load_settings
from tests.conftest import PG_ADMIN_URL, TEST_PEPPER, pg_url
from tests.e2e.conftest import free_port
from tests.helpers import eventually, handles_signal, killed_at_exit

AIRGATE = str(Path(sys.executable).parent / "airgate")
HAPROXY = "/usr/sbin/haproxy"
USSD_SECRET = "scale-ussd-secret-0123"
SERVES = ("serve-1", "serve-2")
WORKERS = ("worker-1", "worker-2")
START_TIMEOUT_S = 120  # five Python processes starting at once on a busy two-core machine
SERVED_BY = "X-Served-By"
HOP_HEADER = "X-Hop"  # names a hop in the proxy's log: "<session id>:<inputs so far>"
RESUME_OFFER = "Continue where you left off"  # core/locales/en.toml, start.resume
START_OVER = "2"  # the offer's "Start over" (core/conversation/engine.py)
# "Not now, nothing was done" (core/locales/en.toml: error.deadline_exceeded, error.busy).
TRY_AGAIN = ("That took too long and nothing was done", "Too many requests are waiting")

# What every process gets besides the database, Redis and the sandbox's address: a small pool each
# (four processes and the test's own core stay far under PostgreSQL's 100 connections).
BASE_ENV = {
    "AIRGATE_PIN_PEPPER": TEST_PEPPER,
    "AIRGATE_USSD_SECRET": USSD_SECRET,
    "AIRGATE_DB_POOL_SIZE": "3",
    "AIRGATE_DB_MAX_OVERFLOW": "2",
    "AIRGATE_DB_LOOKUP_CONNECTIONS": "2",
    "AIRGATE_LOW_STOCK_MINOR": "0",  # no low-stock alerts among the worker's jobs
}


def haproxy_config(*, port: int, serves: dict[str, int]) -> str:
    """Round robin over ``serves`` (name → port), no stickiness; a serve is taken out after three
    failed ``/readyz`` checks 1 s apart (each given 3 s: a busy machine's serve is slow, not
    gone) and back after one good one. A request is retried on the other serve only when it could
    not connect (it never reached a serve, so it cannot have done anything twice). Each answer
    says which serve gave it (``X-Served-By``); each request is logged to stdout with its
    ``X-Hop`` header, how long the proxy held it (Ta, ms: what a gateway in its place waited),
    its serve and its status (:meth:`Cluster.proxy_times`)."""
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{p} check inter 1s fall 3 rise 1"
        for name, p in serves.items()
    )
    return f"""\
global
    maxconn 4096
    log stdout format raw local0

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 3s
    retries 2
    option redispatch

frontend gateway
    bind 127.0.0.1:{port}
    http-request capture req.hdr({HOP_HEADER}) len 100
    log-format "hop %hr %Ta %s %ST"
    default_backend serves

backend serves
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    http-response set-header {SERVED_BY} %s
{servers}
"""


@dataclass
class Cluster:
    """The processes, their addresses and a core of the test's own on the same database."""

    directory: Path
    settings: Settings  # the test's view: same database, Redis, pepper and aggregator
    env: dict[str, str]
    sandbox_url: str
    serve_urls: dict[str, str]  # name → http://127.0.0.1:port
    proxy_url: str
    recipes: dict[str, list[str]] = field(default_factory=dict)  # name → airgate arguments
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stack: ExitStack = field(default_factory=ExitStack)

    # -- processes -----------------------------------------------------------------------------

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or restart, after :meth:`kill`) the process ``name``; its output is appended to
        ``<name>.log``. It is killed when the cluster ends, if it still runs."""
        args = self.recipes[name]
        assert name not in self.processes or self.processes[name].poll() is not None, name
        env = dict(self.env)
        if name in self.serve_urls:
            env["AIRGATE_HTTP_PORT"] = self.serve_urls[name].rsplit(":", 1)[1]
        with (self.directory / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                args, env=env, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = self.stack.enter_context(killed_at_exit(process))
        return process

    def kill(self, name: str, signum: int = signal.SIGKILL, timeout_s: float = 30) -> int:
        """Send ``signum`` to ``name`` and reap it; its exit status."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signum)
        return process.wait(timeout_s)

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
            for p in sorted(self.directory.glob("*.log"))
        )

    def full_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.directory.glob("*.log"))

    # -- readiness -----------------------------------------------------------------------------

    async def wait_ready(self, http: aiohttp.ClientSession, names: Sequence[str] = ()) -> None:
        """Each of ``names`` (default: all) ready: the sandbox answers, each serve's ``/readyz``
        says 200, each worker has set its SIGTERM handler (it takes jobs from there), and the
        proxy has sent answers from both serves."""
        names = names or tuple(self.processes)
        for name in names:
            await eventually(
                lambda name=name: self._ready(http, name),  # type: ignore[misc]
                what=f"{name} ready", timeout_s=START_TIMEOUT_S, every_s=0.2,
            )  # fmt: skip
        if "haproxy" in names:
            await eventually(
                lambda: self._balanced(http), what="the proxy reaching both serves",
                timeout_s=START_TIMEOUT_S, every_s=0.2,
            )  # fmt: skip

    async def _ready(self, http: aiohttp.ClientSession, name: str) -> bool:
        process = self.processes[name]
        assert process.poll() is None, f"{name} exited {process.returncode}\n{self.logs()}"
        if name.startswith("worker"):
            return handles_signal(process.pid, signal.SIGTERM)
        url = {
            "sandbox": f"{self.sandbox_url}/sandbox/stats",
            "haproxy": f"{self.proxy_url}/readyz",
        }.get(name) or f"{self.serve_urls[name]}/readyz"
        return await _answers(http, url)

    async def _balanced(self, http: aiohttp.ClientSession) -> bool:
        seen = set()
        for _ in range(4):
            async with http.get(f"{self.proxy_url}/readyz") as response:
                if response.status != 200:
                    return False
                seen.add(response.headers.get(SERVED_BY))
        return seen == set(SERVES)

    # -- what the test reads -------------------------------------------------------------------

    async def sandbox_stats(
        self, http: aiohttp.ClientSession, reference: str | None = None
    ) -> dict[str, Any]:
        params = {"reference": reference} if reference else {}
        async with http.get(f"{self.sandbox_url}/sandbox/stats", params=params) as response:
            body: dict[str, Any] = await response.json()
            return body

    def proxy_times(self) -> dict[str, float]:
        """Per hop sent through the proxy (its ``X-Hop``), how long the proxy held it, in seconds:
        from its first byte in to the answer's last byte out, the time a gateway there waited
        (the test client's own clock also counts its own turn on a busy machine's CPU)."""
        times = {}
        for line in (self.directory / "haproxy.log").read_text().splitlines():
            match = re.fullmatch(r"hop \{(.*)\} (-?\d+) \S+ \d+", line)
            if match and match.group(1):
                times[match.group(1)] = int(match.group(2)) / 1000
        return times

    async def hops_counted(self, http: aiohttp.ClientSession) -> dict[str, int]:
        """Per serve, the USSD hops it answered (its own ``airgate_ussd_hops_total``)."""
        counts = {}
        for name, url in self.serve_urls.items():
            async with http.get(f"{url}/metrics") as response:
                text = await response.text()
            counts[name] = int(
                sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("airgate_ussd_hops_total{")
                )
            )
        return counts


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


def plan(
    directory: Path,
    *,
    database_url: str,
    redis_url: str,
    env: dict[str, str] | None = None,
    sandbox_args: Sequence[str] = (),
) -> Cluster:
    """The cluster's ports, environment, HAProxy config and commands, nothing started yet.
    ``env``: more ``AIRGATE_*`` settings for every process (not the test's own core)."""
    directory.mkdir(parents=True, exist_ok=True)
    sandbox_port, proxy_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    serve_urls = {name: f"http://127.0.0.1:{free_port()}" for name in SERVES}
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    process_env |= BASE_ENV | {
        "AIRGATE_DATABASE_URL": database_url,
        "AIRGATE_REDIS_URL": redis_url,
        "AIRGATE_VAR_DIR": str(directory / "var"),
        "AIRGATE_PROVIDER_URL": sandbox_url,
        "AIRGATE_PROVIDER_AUTH_URL": sandbox_url,
        "AIRGATE_SMS_URL": sandbox_url,
    }
    process_env |= env or {}
    settings = load_settings(
        database_url=database_url,
        redis_url=redis_url,
        var_dir=directory / "var",
        pin_pepper=TEST_PEPPER,
        provider_url=sandbox_url,
        provider_auth_url=sandbox_url,
        sms_url=sandbox_url,
    )
    config = directory / "haproxy.cfg"
    ports = {name: int(url.rsplit(":", 1)[1]) for name, url in serve_urls.items()}
    config.write_text(haproxy_config(port=proxy_port, serves=ports))
    recipes = {
        "sandbox": [AIRGATE, "sandbox", "--port", str(sandbox_port), *sandbox_args],
        **{name: [AIRGATE, "serve"] for name in SERVES},
        **{name: [AIRGATE, "worker"] for name in WORKERS},
        "haproxy": [HAPROXY, "-f", str(config), "-db"],  # -db: in the foreground, ours to kill
    }
    return Cluster(
        directory=directory,
        settings=settings,
        env=process_env,
        sandbox_url=sandbox_url,
        serve_urls=serve_urls,
        proxy_url=f"http://127.0.0.1:{proxy_port}",
        recipes=recipes,
    )


@asynccontextmanager
async def cluster(
    the_cluster: Cluster, *, seed: Callable[[Core], Awaitable[None]] | None = None
) -> AsyncIterator[tuple[Cluster, Core, aiohttp.ClientSession]]:
    """Seed the database with ``seed`` (before any process reads the catalog), start every
    process of ``the_cluster`` (see :func:`plan`), wait until all are ready and the proxy reaches
    both serves; yield the cluster, a core of the test's own and an HTTP client. On the way out
    every process is killed and reaped."""
    timeout = aiohttp.ClientTimeout(total=60)
    with the_cluster.stack:
        async with (
            open_core(the_cluster.settings) as core,
            # No limit on connections: a burst of hops must all be in flight at once.
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            if seed is not None:
                await seed(core)
            for name in ("sandbox", *SERVES, *WORKERS):
                the_cluster.start(name)
            try:
                await the_cluster.wait_ready(http, ("sandbox", *SERVES, *WORKERS))
                the_cluster.start("haproxy")
                await the_cluster.wait_ready(http, ("haproxy",))
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{the_cluster.logs()}") from None
            yield the_cluster, core, http


# -- the database -------------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def scale_database(name: str) -> Iterator[str]:
    """A PostgreSQL database ``name`` of the test's own, migrated from empty, dropped afterwards
    (with its connections: a process killed mid-transaction leaves none behind)."""

    async def create() -> None:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _admin(f'CREATE DATABASE "{name}"')
        await _admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off')  # throwaway
        engine = make_engine(load_settings(database_url=pg_url(name)).database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(create())
    try:
        yield pg_url(name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- USSD as Africa's Talking posts it -------------------------------------------------------------


@dataclass
class Hop:
    """One answered hop: the HTTP status, the screen, which serve gave it (the proxy's header, or
    the serve's own address when sent to it directly), how long it took seen by the client, and
    its name in the proxy's log (:meth:`Cluster.proxy_times`)."""

    status: int
    screen: str
    served_by: str
    seconds: float
    name: str = ""


def hop_id(session_id: str, path: list[str]) -> str:
    return f"{session_id}:{len(path)}"


async def hop(
    http: aiohttp.ClientSession, base_url: str, *, session_id: str, phone: str, path: list[str]
) -> Hop:
    """One hop of a session in Africa's Talking's form: ``path`` is every input so far."""
    form = {
        "sessionId": session_id,
        "phoneNumber": phone,
        "text": "*".join(path),
        "serviceCode": "*384*123#",
        "networkCode": "63902",
    }
    started = time.monotonic()
    async with http.post(
        f"{base_url}/ussd/africastalking",
        params={"token": USSD_SECRET},
        data=form,
        headers={HOP_HEADER: hop_id(session_id, path)},
    ) as response:
        screen = await response.text()
        served_by = response.headers.get(SERVED_BY, base_url)
    seconds = time.monotonic() - started
    return Hop(response.status, screen, served_by, seconds, hop_id(session_id, path))


@dataclass
class Walk:
    """A session walked by :func:`walk`: every hop sent (retries and restarts too), the path of
    its last session (the next hop's ``path`` is it plus one input), that session's id, and how
    many times a hop had to be tried again."""

    session_id: str
    hops: list[Hop] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    retries: int = 0


def try_again(screen: str) -> bool:
    """The screen refuses for now with nothing done (out of time, or the payer's queue full)."""
    return any(text in screen for text in TRY_AGAIN)


async def walk(
    http: aiohttp.ClientSession,
    url_for: Callable[[int], str],
    *,
    session_id: str,
    phone: str,
    inputs: Sequence[str],
    retries: int = 5,
) -> Walk:
    """A session from its dial through ``inputs``, its ``k``-th hop sent to ``url_for(k)``, as a
    user would go: stops at an END or a status other than 200; a step refused "try again" is
    answered again (at most ``retries`` times in all), and a session ended "try again" is dialled
    again as a new session (``<session_id>-<n>``).

    Another session of the same phone may be mid-journey: a dial is then offered to continue it,
    and this one starts over instead (as a user who dialled for a new top-up would)."""
    walked = Walk(session_id)
    while await _walk_once(http, url_for, walked, phone=phone, inputs=inputs, retries=retries):
        walked.retries += 1  # ended "try again": dial again, a new session
        walked.session_id, walked.path = f"{session_id}-{walked.retries}", []
    return walked


async def _walk_once(
    http: aiohttp.ClientSession,
    url_for: Callable[[int], str],
    walked: Walk,
    *,
    phone: str,
    inputs: Sequence[str],
    retries: int,
) -> bool:
    """One session of :func:`walk`; whether it ended "try again" with retries left (so it is to
    be dialled again)."""
    path = walked.path

    async def send() -> Hop:
        answered = await hop(
            http, url_for(len(walked.hops)), session_id=walked.session_id, phone=phone, path=path
        )
        walked.hops.append(answered)
        return answered

    for k, typed in enumerate((None, *inputs)):
        if typed is not None:
            path.append(typed)
        answered = await send()
        while (
            typed is not None and answered.screen.startswith("CON") and try_again(answered.screen)
        ):
            if walked.retries >= retries:
                return False
            walked.retries += 1
            path.append(typed)  # the same step shown again: the same answer once more
            answered = await send()
        if answered.status != 200 or answered.screen.startswith("END"):
            again = answered.status == 200 and try_again(answered.screen)
            return again and walked.retries < retries
        if k == 0 and answered.screen.startswith(f"CON {RESUME_OFFER}"):
            path.append(START_OVER)
            await send()
    return False


async def topup_rows(core: Core) -> list[Topup]:
    async with core.sessions() as session:
        return list((await session.execute(select(Topup))).scalars())
