"""``airgate serve --processes N``: a parent that binds the listeners once and keeps N ``serve``
children on them (docs/OPERATIONS.md, "Scale"; docs/DECISIONS.md, "serve --processes").

Invariants:
- The listening sockets belong to the parent and are inherited by every child: the port never
  closes while the parent lives, a child killed mid-way loses only its own connections (the
  accept queue is the socket's, not the child's), and a replacement starts on the same socket.
- Each child is a fresh interpreter (``python -m airgate serve``) with its own pools and event
  loop; nothing is shared through memory but the metrics files (prometheus_client's
  multiprocess mode, PROMETHEUS_MULTIPROC_DIR), so any child's /metrics is the sum of all.
- A child that dies is started again after a backoff that grows while it keeps dying young, so a
  crash loop does not spin. A child that fails before it ever listened, while no child has yet
  started, stops the parent with that child's exit status (its own one-line error says why);
  after START_FAILURES such failures in a row later on, the parent gives up too.
- SIGTERM/SIGINT are passed to every child, which finishes what is in flight; a child still
  running after ``stop_grace_s`` is killed and the parent exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from core.logging import get_logger

log = get_logger(__name__)

# A child that lived this long before it died was healthy: its replacement starts at once.
STABLE_S = 10.0
# Backoff between restarts of a child that keeps dying young: doubled each time, up to the cap.
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
# Children in a row of one slot that died before listening: the parent gives up.
START_FAILURES = 5
BACKLOG = 1024  # shared by all children: a burst waits in the kernel, not refused
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class GaveUp(Exception):
    """The children could not be kept running; ``code`` is the parent's exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Listener:
    """One address the children serve; ``option`` is the child's hidden option for its fd."""

    host: str
    port: int
    option: str
    what: str
    setting: str

    def bind(self) -> socket.socket:
        """The listening socket, inheritable; a taken port is one line naming the setting."""
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.create_server((self.host, self.port), family=family, backlog=BACKLOG)
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise GaveUp(
                f"cannot listen on {self.host}:{self.port} for {self.what}: {reason} "
                f"(set {self.setting})",
                code=1,
            ) from None
        sock.set_inheritable(True)
        return sock


@dataclass
class Supervisor:
    """N children of ``airgate serve`` on the sockets of ``listeners``."""

    processes: int
    listeners: list[Listener]
    stop_grace_s: float
    # What each child runs, before its hidden options: this very ``airgate serve``.
    child: tuple[str, ...] = (sys.executable, "-m", "airgate", "serve")
    first_backoff_s: float = FIRST_BACKOFF_S
    sockets: list[socket.socket] = field(default_factory=list)
    children: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    ever_ready: bool = False

    async def run(self) -> int:
        """Serve until a signal; the exit status: 0 when every child stopped in time."""
        with self._closing(), _metrics_dir(), self._signals():
            slots = [asyncio.create_task(self._keep(slot)) for slot in range(self.processes)]
            stop = asyncio.create_task(self.stopping.wait())
            done, _ = await asyncio.wait([stop, *slots], return_when=asyncio.FIRST_COMPLETED)
            self.stopping.set()
            failed = next((t.exception() for t in done if t is not stop and t.exception()), None)
            clean = await self._stop_children()
            for task in slots:
                task.cancel()
            await asyncio.gather(*slots, return_exceptions=True)
            if isinstance(failed, BaseException):
                raise failed
            return 0 if clean else 1

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def bind(self) -> None:
        """Bind every listener, before ``run``: a taken port fails here, before any child."""
        with self._closing(on_error_only=True):
            for listener in self.listeners:
                self.sockets.append(listener.bind())

    @contextlib.contextmanager
    def _closing(self, *, on_error_only: bool = False) -> Iterator[None]:
        try:
            yield
        except BaseException:
            on_error_only = False
            raise
        finally:
            if not on_error_only:
                for sock in self.sockets:
                    sock.close()

    async def _keep(self, slot: int) -> None:
        """Keep child ``slot`` running until the parent stops."""
        young_deaths = 0
        start_failures = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            process, ready = await self._spawn(slot)
            if self.stopping.is_set():  # spawned while the others were being stopped
                process.terminate()
            listened = await ready
            if listened:
                self.ever_ready = True
                start_failures = 0
            code = await process.wait()
            self.children.pop(slot, None)
            _mark_dead(process.pid)
            if self.stopping.is_set():
                return
            if not listened:
                if not self.ever_ready:  # e.g. the database is unreachable: its line said why
                    raise GaveUp("", code=code if code > 0 else 1)
                start_failures += 1
                if start_failures >= START_FAILURES:
                    raise GaveUp(
                        f"serve process {slot} failed {start_failures} times in a row before it "
                        "could listen; stopping (its own lines above say why)",
                        code=1,
                    )
            lived = time.monotonic() - started
            young_deaths = young_deaths + 1 if lived < STABLE_S else 0
            delay = 0.0 if young_deaths == 0 else self._backoff(young_deaths)
            log.warning(
                "serve.process_exited", slot=slot, pid=process.pid, code=code, restart_in_s=delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    def _backoff(self, young_deaths: int) -> float:
        return float(min(self.first_backoff_s * 2 ** (young_deaths - 1), MAX_BACKOFF_S))

    async def _spawn(self, slot: int) -> tuple[asyncio.subprocess.Process, asyncio.Future[bool]]:
        """Start child ``slot``; the future says whether it listened (it writes one byte on its
        ready pipe then) or died first (the pipe closes unwritten)."""
        read_end, write_end = os.pipe()
        fds = [sock.fileno() for sock in self.sockets]
        args = [*self.child, "--ready-fd", str(write_end)]
        for listener, fd in zip(self.listeners, fds, strict=True):
            args += [listener.option, str(fd)]
        try:
            process = await asyncio.create_subprocess_exec(
                *args, pass_fds=(*fds, write_end), preexec_fn=_die_with_parent
            )
        finally:
            os.close(write_end)
        self.children[slot] = process
        return process, _first_byte(read_end)

    async def _stop_children(self) -> bool:
        """SIGTERM to every child, SIGKILL to those still running after the grace: whether all
        stopped by themselves (one still starting may die of the SIGTERM: it had nothing in
        flight)."""
        running = list(self.children.values())
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(process.wait()) for process in running]
        if not waits:
            return True
        _, late = await asyncio.wait(waits, timeout=self.stop_grace_s)
        for process in running:
            if process.returncode is None:
                log.error("serve.process_killed", pid=process.pid, grace_s=self.stop_grace_s)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await asyncio.gather(*waits)
        return not late


def _first_byte(read_end: int) -> asyncio.Future[bool]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()

    def readable() -> None:
        loop.remove_reader(read_end)
        got = os.read(read_end, 1)
        os.close(read_end)
        future.set_result(bool(got))

    loop.add_reader(read_end, readable)
    return future


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, however it dies (Linux), so a
    SIGKILLed parent leaves no child holding the port."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def _metrics_dir() -> Iterator[None]:
    """A fresh directory for the children's metric files, removed when the parent stops: the
    children inherit its name through the environment (read by prometheus_client at import)."""
    path = tempfile.mkdtemp(prefix="airgate-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def _mark_dead(pid: int) -> None:
    """Drop a dead child's live gauges (its counters stay: they must not go backwards)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
