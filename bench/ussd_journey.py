"""USSD journey: hops/s and hop latency of ``airgate serve`` against a bare aiohttp + Redis handler.

On PostgreSQL and Redis, with ``airgate serve`` as its own process (a fresh database seeded with
``--retailers`` demo retailers, its own Redis database flushed first): ``--sessions`` asyncio tasks
in this process each play, again and again, the cancelled airtime journey of issue 4 through
``POST /ussd/africastalking`` (a fresh ``sessionId`` per journey, each task on retailers of its own
so no two live sessions share a number): texts ``""``, ``1``, ``1*0788123456``,
``1*0788123456*500``, ``1*0788123456*500*0``; every reply must start with ``CON`` (``END`` on the
last) or it counts as an error. ``--warmup`` seconds, then ``--seconds`` measured.

Then the same load against a **bare handler**: this script started again as ``--bare-server``, an
aiohttp app that parses the same form and does one Redis GET and one SET per hop (redis.asyncio,
same Redis), answering ``CON ok``. **ratio** = AirGate hops/s ÷ bare hops/s.

Both servers, Redis, PostgreSQL and this client share the machine's cores, so hops/s is also a
measure of how much CPU the client leaves; the server process's own CPU time per hop
(/proc/<pid>/stat utime + stime) is the fairer comparison and is printed for both, with the CPU
per hop of the client, Redis and PostgreSQL, and "other": busy time of the machine that none of
them used (another engineer's test run), which says how disturbed the measurement was.

**Redis memory per live session**: with AirGate still running and its Redis database flushed,
``--live`` sessions (each its own retailer) are driven to the confirm screen and left there;
``MEMORY USAGE`` of the session keys (``airgate:s:ussd:*``) and of the resume keys
(``airgate:r:*``), averaged, and ``used_memory`` grown ÷ sessions (what the keyspace itself costs:
dictionary entries and expiry times too). The seed then holds max(``--retailers``, ``--live``)
retailers.

The database ``airgate_bench_ussd`` is dropped and created again (through the database ``test``);
the Redis database of ``--redis`` is flushed before each server and at the end (the tests use 1-15;
``bench/topups.py`` uses 0 as well: do not run both at once).

Run:  .venv/bin/python bench/ussd_journey.py [--sessions 32] [--seconds 20] [--warmup 5]
      [--retailers 200] [--live 1000] [--only airgate|bare]
      [--profile /tmp/ussd.txt | --cprofile /tmp/ussd.prof | --py-spy /tmp/ussd-spy.txt]
      (profile the measured window: CPU-time stack samples of both servers, summarised in µs per
      hop; or cProfile of airgate serve, for call counts; or py-spy record attached to it. Each
      skips the memory phase.)
      [--pg /var/run/postgresql | postgresql://postgres@127.0.0.1:5432]
      [--redis redis://127.0.0.1:6379/0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from asyncio.subprocess import DEVNULL, Process
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import redis.asyncio as aioredis
from aiohttp import web
from rich.console import Console
from rich.table import Table

from _common import (  # isort: skip (bench/, the script's own folder)
    BENCH_POOL,
    AIRGATE,
    PEPPER,
    add_server_flags,
    cpu_s,
    flush_redis,
    free_port,
    machine_busy_s,
    note_load,
    pct,
    pg_url,
    pids_named,
    recreate_database,
    stop,
    sys_s,
    wait_http,
)

BENCH_DB = "airgate_bench_ussd"
SECRET = "bench-ussd-secret"
ROUTE = "/ussd/africastalking"
CUSTOMER = "0788123456"
JOURNEY = ["", "1", f"1*{CUSTOMER}", f"1*{CUSTOMER}*500", f"1*{CUSTOMER}*500*0"]
TO_CONFIRM = JOURNEY[:4]  # the live sessions of the memory phase stop at the confirm screen
NOTE = "client, server, Redis and PostgreSQL share the same {cores} cores"


@dataclass
class Load:
    server: str
    sessions: int
    seconds: float
    hops: int
    journeys: int
    errors: int
    hops_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    # CPU µs per hop over the measured window, by process kind; "machine": all cores busy.
    cpu_us: dict[str, float]
    machine_busy_cores: float  # cores busy on average during the window (of nproc)
    load_before: float
    load_after: float
    hop_p50_ms: list[float] = field(default_factory=list)  # by hop of the journey
    hop_p99_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


@dataclass
class Memory:
    live_sessions: int
    session_keys: int
    session_bytes: float  # MEMORY USAGE, mean
    session_value_bytes: float  # STRLEN, mean
    resume_keys: int
    resume_bytes: float
    resume_value_bytes: float
    used_memory_per_session: float  # used_memory grown ÷ live sessions
    sample_session: str
    sample_resume: str


# -- set-up -------------------------------------------------------------------------------------


async def prepare_database(args: argparse.Namespace, var_dir: Path, retailers: int) -> float:
    """A fresh database, migrated and seeded; returns the seconds the seed took."""
    from core.context import open_core
    from core.db import upgrade
    from core.services.seed import seed_demo
    from core.settings import load_settings

    await recreate_database(args.pg, BENCH_DB)
    settings = load_settings(
        database_url=pg_url(args.pg, BENCH_DB), var_dir=var_dir, pin_pepper=PEPPER
    )
    t0 = time.perf_counter()
    async with open_core(settings) as core:
        await upgrade(core.engine)
        await seed_demo(core, retailers=retailers)
    return time.perf_counter() - t0


@dataclass
class Server:
    proc: Process
    pid: int
    base: str


async def start_airgate(args: argparse.Namespace, var_dir: Path, port: int) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_DATABASE_URL=pg_url(args.pg, BENCH_DB),
        AIRGATE_REDIS_URL=args.redis,
        AIRGATE_VAR_DIR=str(var_dir),
        AIRGATE_PIN_PEPPER=PEPPER,
        AIRGATE_USSD_SECRET=SECRET,
        AIRGATE_LOG_LEVEL="WARNING",
        AIRGATE_HTTP_HOST="127.0.0.1",
        AIRGATE_HTTP_PORT=str(port),
        **BENCH_POOL,
    )
    command = [AIRGATE, "serve"]
    if args.profile or args.cprofile:
        profiler, path = ("sampler", args.profile) if args.profile else ("cprofile", args.cprofile)
        command = [sys.executable, __file__, "--profiled-server", path, "--profiler", profiler]
    proc = await asyncio.create_subprocess_exec(*command, env=env, stdout=DEVNULL, stderr=DEVNULL)
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/health", proc)
    return Server(proc, proc.pid, base)


async def start_py_spy(args: argparse.Namespace, pid: int) -> Process:
    """``py-spy record`` (from the PATH) attached to the server for the measured window."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--py-spy: no py-spy on the PATH")
    return await asyncio.create_subprocess_exec(
        *[spy, "record", "--pid", str(pid), "--nonblocking", "-r", "250", "-f", "raw"],
        *["-d", str(max(1, int(args.seconds))), "-o", args.py_spy],
        stdout=DEVNULL,
        stderr=DEVNULL,
    )


async def start_bare(args: argparse.Namespace, port: int) -> Server:
    command = [__file__, "--bare-server", "--port", str(port), "--redis", args.redis]
    if args.profile:
        command += ["--profiled-server", bare_profile(args.profile)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command, stdout=DEVNULL, stderr=DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/health", proc)
    return Server(proc, proc.pid, base)


# -- the servers' own modes ---------------------------------------------------------------------

BARE_REDIS = web.AppKey("redis", aioredis.Redis)


def bare_app(redis_url: str) -> web.Application:
    """Parse the gateway's form, one GET and one SET in Redis, ``CON ok``: the floor."""
    app = web.Application()

    async def resources(app: web.Application):  # type: ignore[no-untyped-def]
        app[BARE_REDIS] = redis = aioredis.Redis.from_url(redis_url)
        yield
        await redis.aclose()

    async def hop(request: web.Request) -> web.Response:
        form = await request.post()
        session_id, phone = str(form["sessionId"]), str(form["phoneNumber"])
        text = str(form.get("text", ""))
        key = f"bare:s:{session_id}"
        redis = request.app[BARE_REDIS]
        await redis.get(key)
        await redis.set(key, f"{phone}|{text}", px=180_000)
        return web.Response(text="CON ok", content_type="text/plain")

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.cleanup_ctx.append(resources)
    app.router.add_post(ROUTE, hop)
    app.router.add_get("/health", health)
    return app


class CpuSampler:
    """The main thread's Python stack, sampled every ``interval`` s of the process's CPU time
    (``ITIMER_PROF``): unlike a wall clock (cProfile's, py-spy's), time the server spends
    preempted by the other processes on these cores counts nowhere, and the cost is one stack
    walk per sample, not a clock read per call. Time in C (a ``send``, hiredis) is charged to the
    Python function that called it. SQLAlchemy's greenlets are stitched to the stack that spawned
    them."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.counts: dict[tuple[object, ...], int] = {}

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def _sample(self, _signum: int, frame: object) -> None:
        import greenlet  # type: ignore[import-untyped]

        codes = []
        current = greenlet.getcurrent()
        while True:
            while frame is not None:
                codes.append(frame.f_code)  # type: ignore[attr-defined]
                frame = frame.f_back  # type: ignore[attr-defined]
            current = current.parent
            if current is None:
                break
            frame = current.gr_frame
        key = tuple(codes)
        self.counts[key] = self.counts.get(key, 0) + 1

    def dump(self, path: str) -> None:
        """Collapsed stacks, root first, one ``a;b;c count`` line each (flamegraph.pl's input)."""
        lines = []
        for codes, count in self.counts.items():
            names = [f"{c.co_qualname} ({_short(c.co_filename)})" for c in reversed(codes)]  # type: ignore[attr-defined]
            lines.append(f"{';'.join(names)} {count}")
        Path(path).write_text("\n".join(lines) + "\n")


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/python3.11/", f"{Path.cwd()}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def bare_profile(path: str) -> str:
    return f"{path}.bare"


def run_profiled(path: str, profiler: str) -> None:
    """``airgate serve`` in this process, profiled from SIGUSR1 to SIGUSR2 (the bench sends them
    at the ends of the measured window, so the profile holds exactly the measured hops); written
    when the server exits. ``sampler``: :class:`CpuSampler`. ``cprofile``: cProfile, for call
    counts; its clock is wall time (a CPU clock is a system call per event here and tripled the
    server's cost), so its times include preemption and its overhead favours code that makes
    many small calls."""
    import cProfile

    from airgate.cli import main as airgate

    sampler, profile = CpuSampler(), cProfile.Profile()
    begin, end = (
        (sampler.start, sampler.stop)
        if profiler == "sampler"
        else (
            profile.enable,
            profile.disable,
        )
    )
    signal.signal(signal.SIGUSR1, lambda *_: begin())
    signal.signal(signal.SIGUSR2, lambda *_: end())
    sys.argv = ["airgate", "serve"]
    try:
        airgate()
    except SystemExit:
        pass
    finally:
        end()
        if profiler == "sampler":
            sampler.dump(path)
        else:
            profile.dump_stats(path)


def summarise(path: str, cpu_us_per_hop: float, top: int = 35) -> list[str]:
    """The sampler's collapsed stacks as the functions costing most, in µs of CPU per hop."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    scale = cpu_us_per_hop / max(total, 1)
    out = [f"{total:,} samples; µs of server CPU per hop, inclusive (own):"]
    for name, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {n * scale:7.0f} ({own.get(name, 0) * scale:5.0f})  {name}")
    out.append("most own time:")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {n * scale:7.0f}  {name}")
    return out


def run_bare(port: int, redis_url: str, profile: str | None) -> None:
    sampler = CpuSampler()
    if profile:  # as run_profiled: from SIGUSR1 to SIGUSR2
        signal.signal(signal.SIGUSR1, lambda *_: sampler.start())
        signal.signal(signal.SIGUSR2, lambda *_: sampler.stop())
    # SIGTERM ends run_app cleanly (it raises GracefulExit).
    web.run_app(bare_app(redis_url), host="127.0.0.1", port=port, access_log=None, print=None)
    if profile:
        sampler.stop()
        sampler.dump(profile)


# -- the client ---------------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.phase = "warmup"  # warmup → measure → done
        self.latencies: list[float] = []
        self.by_hop: list[list[float]] = [[] for _ in JOURNEY]
        self.journeys = 0
        self.errors = 0
        self.error_samples: list[str] = []

    def error(self, what: str) -> None:
        if self.phase == "measure":
            self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for these POSTs
    (aiohttp's client spent as much CPU per hop as the server it measured, on the same 2 cores:
    ~440 µs; this ~60). A real gateway's requests come from its own machines."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, form: dict[str, str]) -> tuple[int, str]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = urlencode(form).encode()
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded"
            b"\r\nContent-Length: %d\r\n\r\n%s"
            % (self.path.encode(), self.host.encode(), len(body), body)
        )
        try:
            status = int((await self.reader.readline()).split()[1])
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            return status, (await self.reader.readexactly(length)).decode()
        except (IndexError, ValueError, asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def hop(conn: Connection, session_id: str, msisdn: str, text: str) -> tuple[int, str]:
    form = {"sessionId": session_id, "phoneNumber": msisdn, "serviceCode": "*384#", "text": text}
    return await conn.post(form)


def expected(reply: str, index: int, last: int, *, bare: bool) -> bool:
    if bare or index < last:
        return reply.startswith("CON ")
    return reply.startswith("END ")


async def player(
    conn: Connection,
    stats: Stats,
    *,
    task: int,
    numbers: list[str],
    bare: bool,
) -> None:
    """One USSD session after another, each the whole journey, until the measured window ends.
    A journey is never cut short by the clock (a cut one would leave a resume point behind)."""
    n = 0
    last = len(JOURNEY) - 1
    while stats.phase != "done":
        session_id = f"ATUid_{task}_{n}_{time.monotonic_ns()}"
        msisdn = numbers[n % len(numbers)]
        n += 1
        for index, text in enumerate(JOURNEY):
            t0 = time.perf_counter()
            try:
                status, reply = await hop(conn, session_id, msisdn, text)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                stats.error(f"hop {index}: {type(exc).__name__}: {exc}")
                break
            elapsed = time.perf_counter() - t0
            if status != 200 or not expected(reply, index, last, bare=bare):
                stats.error(f"hop {index} ({text!r}): {status} {reply[:80]!r}")
                break
            if stats.phase == "measure":
                stats.latencies.append(elapsed)
                stats.by_hop[index].append(elapsed)
        else:
            if stats.phase == "measure":
                stats.journeys += 1


def numbers_of(task: int, sessions: int, retailers: int) -> list[str]:
    """Task ``task``'s retailers: every ``sessions``-th one, so no two tasks share a number."""
    from core.services.seed import retailer_msisdn

    return [retailer_msisdn(i) for i in range(1 + task, retailers + 1, sessions)]


async def load(args: argparse.Namespace, name: str, server: Server, *, bare: bool) -> Load:
    parsed = urlsplit(server.base)
    path = f"{ROUTE}?token={SECRET}"
    stats = Stats()
    conns = [
        Connection(parsed.hostname or "127.0.0.1", parsed.port or 80, path)
        for _ in range(args.sessions)
    ]
    try:
        tasks = [
            asyncio.create_task(
                player(
                    conns[i],
                    stats,
                    task=i,
                    numbers=numbers_of(i, args.sessions, args.retailers),
                    bare=bare,
                )
            )
            for i in range(args.sessions)
        ]
        await asyncio.sleep(args.warmup)
        groups = {
            "server": [server.pid],
            "client (bench)": [os.getpid()],
            "redis": pids_named("redis-server"),
            "postgres": pids_named("postgres"),
        }
        load_before = os.getloadavg()[0]
        cpu0 = {name: {pid: cpu_s([pid]) for pid in pids} for name, pids in groups.items()}
        busy0, sys0 = machine_busy_s(), sys_s(server.pid)
        profiled = args.profile or (args.cprofile and not bare)
        if profiled:
            os.kill(server.pid, signal.SIGUSR1)
        spy = await start_py_spy(args, server.pid) if args.py_spy and not bare else None
        stats.phase = "measure"
        t0 = time.perf_counter()
        await asyncio.sleep(args.seconds)
        stats.phase = "done"
        if profiled:
            os.kill(server.pid, signal.SIGUSR2)
        seconds = time.perf_counter() - t0
        busy, server_sys = machine_busy_s() - busy0, sys_s(server.pid) - sys0
        groups["postgres"] = pids_named("postgres")
        cpu_used = {
            group: sum(cpu_s([pid]) - cpu0[group].get(pid, 0.0) for pid in pids)
            for group, pids in groups.items()
        }
        load_after = os.getloadavg()[0]
        await asyncio.gather(*tasks)
        if spy is not None:
            await spy.wait()
    finally:
        for conn in conns:
            conn.close()
    hops = len(stats.latencies)
    per_hop = 1e6 / max(hops, 1)
    cpu_us = {group: used * per_hop for group, used in cpu_used.items()}
    cpu_us["server in kernel"] = server_sys * per_hop  # of "server": sockets, epoll
    cpu_us["machine"] = busy * per_hop
    # Busy time of nothing above: other work on the machine (a test run), the kernel's own.
    cpu_us["other"] = (busy - sum(cpu_used.values())) * per_hop
    return Load(
        server=name,
        sessions=args.sessions,
        seconds=seconds,
        hops=hops,
        journeys=stats.journeys,
        errors=stats.errors,
        hops_per_s=hops / seconds,
        p50_ms=pct(stats.latencies, 0.50),
        p99_ms=pct(stats.latencies, 0.99),
        max_ms=max(stats.latencies, default=0.0) * 1000,
        cpu_us=cpu_us,
        machine_busy_cores=busy / seconds,
        load_before=load_before,
        load_after=load_after,
        hop_p50_ms=[pct(samples, 0.50) for samples in stats.by_hop],
        hop_p99_ms=[pct(samples, 0.99) for samples in stats.by_hop],
        error_samples=stats.error_samples,
    )


# -- Redis memory per live session --------------------------------------------------------------


async def memory(args: argparse.Namespace, base: str) -> Memory:
    """``--live`` sessions, one per retailer, left at the confirm screen; their keys measured."""
    from core.services.seed import retailer_msisdn

    parsed = urlsplit(base)
    redis = aioredis.Redis.from_url(args.redis)
    try:
        await redis.flushdb()
        await asyncio.sleep(0.5)
        used0 = int((await redis.info("memory"))["used_memory"])
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(1, args.live + 1):
            queue.put_nowait(i)
        failures: list[str] = []

        async def drive() -> None:
            conn = Connection(parsed.hostname or "127.0.0.1", parsed.port or 80, path)
            while not queue.empty():
                i = queue.get_nowait()
                session_id = f"ATUid_live_{i}"
                for index, text in enumerate(TO_CONFIRM):
                    status, reply = await hop(conn, session_id, retailer_msisdn(i), text)
                    if status != 200 or not reply.startswith("CON "):
                        failures.append(f"live {i} hop {index}: {status} {reply[:80]!r}")
                        break

            conn.close()

        path = f"{ROUTE}?token={SECRET}"
        await asyncio.gather(*(drive() for _ in range(args.sessions)))
        if failures:
            raise SystemExit(f"{len(failures)} live sessions failed: {failures[:3]}")
        used1 = int((await redis.info("memory"))["used_memory"])

        async def measure(pattern: str) -> tuple[int, float, float, str]:
            keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
            pipe = redis.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key, samples=0)
                pipe.strlen(key)
            answers = await pipe.execute()
            usage, lengths = answers[0::2], answers[1::2]
            sample = (await redis.get(keys[0])).decode() if keys else ""
            n = max(len(keys), 1)
            return len(keys), sum(usage) / n, sum(lengths) / n, sample

        s_keys, s_bytes, s_len, s_sample = await measure("airgate:s:ussd:*")
        r_keys, r_bytes, r_len, r_sample = await measure("airgate:r:*")
    finally:
        await redis.aclose()
    return Memory(
        live_sessions=args.live,
        session_keys=s_keys,
        session_bytes=s_bytes,
        session_value_bytes=s_len,
        resume_keys=r_keys,
        resume_bytes=r_bytes,
        resume_value_bytes=r_len,
        used_memory_per_session=(used1 - used0) / args.live,
        sample_session=s_sample,
        sample_resume=r_sample,
    )


# -- the run ------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> tuple[list[Load], Memory | None, float]:
    loads: list[Load] = []
    mem: Memory | None = None
    seed_s = 0.0
    with tempfile.TemporaryDirectory(prefix="ag-bench-ussd-") as tmp:
        var_dir = Path(tmp)
        if args.only in (None, "airgate"):
            retailers = max(args.retailers, args.live)
            seed_s = await prepare_database(args, var_dir, retailers)
            await flush_redis(args.redis)
            server = await start_airgate(args, var_dir, free_port())
            try:
                loads.append(await load(args, "AirGate", server, bare=False))
                if args.live:
                    mem = await memory(args, server.base)
            finally:
                await stop([server.proc])
        if args.only in (None, "bare"):
            await flush_redis(args.redis)
            server = await start_bare(args, free_port())
            try:
                loads.append(await load(args, "bare handler", server, bare=True))
            finally:
                await stop([server.proc])
        await flush_redis(args.redis)
    return loads, mem, seed_s


def render(args: argparse.Namespace, loads: list[Load], mem: Memory | None, seed_s: float) -> None:
    console = Console(width=None if sys.stdout.isatty() else 150)
    render_loads(console, args, loads)
    by_name = {r.server: r for r in loads}
    render_targets(console, by_name)
    if mem is not None:
        render_memory(console, mem)
    if seed_s:
        console.print(f"(seeding {max(args.retailers, args.live)} retailers took {seed_s:.0f} s)")
    if args.profile:
        render_profiles(console, args.profile, by_name)


def render_profiles(console: Console, path: str, by_name: dict[str, Load]) -> None:
    for name, where in (("AirGate", path), ("bare handler", bare_profile(path))):
        if name in by_name:
            console.print(f"CPU profile of the {name}'s measured window ({where}):")
            for line in summarise(where, by_name[name].cpu_us["server"]):
                console.print(line, highlight=False, soft_wrap=True)


def render_loads(console: Console, args: argparse.Namespace, loads: list[Load]) -> None:
    cores = os.cpu_count() or 0
    table = Table(
        title=f"USSD journey, {args.sessions} sessions, {args.seconds:g} s "
        f"(after {args.warmup:g} s warm-up); {NOTE.format(cores=cores)}"
    )
    for name in ("server", "hops/s", "p50 ms", "p99 ms", "max ms", "errors", "journeys",
                 "server CPU µs/hop", "machine µs/hop", "busy cores", "load 1 min"):  # fmt: skip
        table.add_column(name, justify="right")
    for r in loads:
        table.add_row(
            r.server,
            f"{r.hops_per_s:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.max_ms:.1f}",
            str(r.errors),
            f"{r.journeys:,}",
            f"{r.cpu_us['server']:,.0f}",
            f"{r.cpu_us['machine']:,.0f}",
            f"{r.machine_busy_cores:.2f} of {cores}",
            f"{r.load_before:.2f} → {r.load_after:.2f}",
        )
    console.print(table)
    for r in loads:
        split = ", ".join(f"{name} {us:,.0f}" for name, us in r.cpu_us.items())
        console.print(f"CPU µs per hop, {r.server}: {split}")
        pairs = zip(JOURNEY, r.hop_p50_ms, r.hop_p99_ms, strict=True)
        by_hop = ", ".join(f"{text!r} {p50:.1f}/{p99:.1f}" for text, p50, p99 in pairs)
        console.print(f"  p50/p99 ms by hop: {by_hop}", highlight=False)
        for sample in r.error_samples:
            console.print(f"  error ({r.server}): {sample}")


def render_targets(console: Console, by_name: dict[str, Load]) -> None:
    if "AirGate" in by_name and "bare handler" in by_name:
        ours, bare = by_name["AirGate"], by_name["bare handler"]
        ratio = ours.hops_per_s / bare.hops_per_s
        cpu_ratio = bare.cpu_us["server"] / ours.cpu_us["server"]
        console.print(
            f"ratio (hops/s) {ratio:.2f} (target ≥ 0.6: {'met' if ratio >= 0.6 else 'MISSED'}); "
            f"server CPU per hop: AirGate {ours.cpu_us['server']:,.0f} µs, bare "
            f"{bare.cpu_us['server']:,.0f} µs, ratio bare ÷ AirGate {cpu_ratio:.2f}"
        )
    if "AirGate" in by_name:
        p99 = by_name["AirGate"].p99_ms
        console.print(
            f"AirGate p99 {p99:.1f} ms (target < 25 ms: {'met' if p99 < 25 else 'MISSED'})"
        )


def render_memory(console: Console, mem: Memory) -> None:
    per_live = mem.session_bytes + mem.resume_bytes
    console.print(
        f"Redis, {mem.live_sessions:,} live sessions at the confirm screen: "
        f"{mem.session_keys:,} session keys, MEMORY USAGE {mem.session_bytes:.0f} B "
        f"(value {mem.session_value_bytes:.0f} B); {mem.resume_keys:,} resume keys "
        f"{mem.resume_bytes:.0f} B (value {mem.resume_value_bytes:.0f} B); per live session "
        f"{per_live:.0f} B (target ≤ 1024: {'met' if per_live <= 1024 else 'MISSED'}); "
        f"used_memory grew {mem.used_memory_per_session:.0f} B per session"
    )
    console.print(f"  session value: {mem.sample_session}", highlight=False, soft_wrap=True)
    console.print(f"  resume value:  {mem.sample_resume}", highlight=False, soft_wrap=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=32, help="concurrent USSD sessions")
    parser.add_argument("--seconds", type=float, default=20, help="measured window per server")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured seconds first")
    parser.add_argument("--retailers", type=int, default=200)
    parser.add_argument(
        "--live", type=int, default=1000, help="sessions left at confirm for memory (0: skip)"
    )
    parser.add_argument("--only", choices=["airgate", "bare"])
    parser.add_argument(
        "--profile", help="sample the servers' CPU in the measured window; stacks to here (.bare)"
    )
    parser.add_argument("--cprofile", help="cProfile airgate serve's measured window, to here")
    parser.add_argument(
        "--py-spy", help="`py-spy record -f raw` (on the PATH) of the measured window, to here"
    )
    add_server_flags(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--profiled-server", help=argparse.SUPPRESS)
    parser.add_argument("--profiler", default="sampler", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare(args.port, args.redis, args.profiled_server)
        return
    if args.profiled_server:
        run_profiled(args.profiled_server, args.profiler)
        return
    if args.retailers < args.sessions:
        parser.error("--retailers must be at least --sessions: live sessions share no number")
    if args.profile or args.cprofile or args.py_spy:
        args.live = 0  # the profile is of the journey's hops only
    note_load()
    loads, mem, seed_s = asyncio.run(bench(args))
    if args.json:
        out = {"loads": [asdict(r) for r in loads], "memory": mem and asdict(mem)}
        print(json.dumps(out, indent=2))
    else:
        render(args, loads, mem, seed_s)


if __name__ == "__main__":
    main()
