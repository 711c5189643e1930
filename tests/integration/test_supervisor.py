"""airgate/supervisor.py with real child processes that misbehave on purpose (a few lines of
Python in place of ``airgate serve``, fast to start): a crash loop is slowed by the backoff, a
child that never listens before any did stops the parent with its status, one that stops
listening after the service had started is given up on after START_FAILURES, and a child that
ignores SIGTERM is killed after the grace."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import pytest

from airgate.supervisor import START_FAILURES, GaveUp, Listener, Supervisor
from tests.helpers import eventually

# argv: [child.py, log, mode, --ready-fd N, --http-fd M]; each start appends a line to log.
CHILD = """
import os, signal, sys, time
log, mode, ready = sys.argv[1], sys.argv[2], int(sys.argv[4])
with open(log, "a") as f:
    f.write(f"{os.getpid()}\\n")
starts = len(open(log).read().split())
if mode == "never" or (mode == "once" and starts > 1):
    sys.exit(4)
if mode == "deaf":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "good":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(log + ".ready", "a") as f:
    f.write(f"{os.getpid()}\\n")
os.write(ready, b"1")
if mode in ("once", "crash"):
    time.sleep(0.2)
    sys.exit(3)
while True:
    time.sleep(1)
"""


def _supervisor(tmp_path: Path, mode: str, *, processes: int = 1, grace_s: float = 5) -> Supervisor:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    supervisor = Supervisor(
        processes,
        [Listener("127.0.0.1", port, "--http-fd", "HTTP", "AIRGATE_HTTP_PORT")],
        stop_grace_s=grace_s,
        child=(sys.executable, str(script), str(tmp_path / "starts"), mode),
        first_backoff_s=0.2,
    )
    supervisor.bind()
    return supervisor


def _starts(tmp_path: Path) -> int:
    path = tmp_path / "starts"
    return len(path.read_text().split()) if path.exists() else 0


async def _run_for(supervisor: Supervisor, seconds: float) -> int:
    asyncio.get_running_loop().call_later(seconds, supervisor.stopping.set)
    return await asyncio.wait_for(supervisor.run(), seconds + 30)


async def test_a_crash_loop_is_slowed_by_the_backoff(tmp_path: Path) -> None:
    """A child dying 0.2 s after it listens: restarts after 0.2, 0.4, 0.8, 1.6 … s, not at once."""
    code = await _run_for(_supervisor(tmp_path, "crash"), 4.0)
    assert code == 0
    # Without backoff ~10 starts fit in 4 s even on a busy machine (each lives 0.2 s); with it
    # the sleeps alone (0.2 + 0.4 + 0.8 + 1.6) leave room for 5 at most.
    assert 2 <= _starts(tmp_path) <= 5


async def test_children_that_never_listen_stop_the_parent_with_their_status(
    tmp_path: Path,
) -> None:
    with pytest.raises(GaveUp) as gave_up:
        await _run_for(_supervisor(tmp_path, "never", processes=2), 60)
    assert gave_up.value.code == 4
    assert str(gave_up.value) == ""  # the child's own line said why
    assert _starts(tmp_path) <= 2  # not restarted


async def test_a_child_that_cannot_start_again_is_given_up_on(tmp_path: Path) -> None:
    """Listened once (the service started), then every restart fails before listening."""
    with pytest.raises(GaveUp, match=f"failed {START_FAILURES} times in a row") as gave_up:
        await _run_for(_supervisor(tmp_path, "once"), 60)
    assert gave_up.value.code == 1
    assert _starts(tmp_path) == 1 + START_FAILURES


async def _stop_once_listening(supervisor: Supervisor, tmp_path: Path) -> None:
    """Ask ``supervisor`` to stop once each of its children has its handlers and listens."""

    async def all_listening() -> bool:
        ready = tmp_path / "starts.ready"
        return ready.exists() and len(ready.read_text().split()) >= supervisor.processes

    await eventually(all_listening, what="every child listening")
    supervisor.stopping.set()


async def test_a_child_deaf_to_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path, "deaf", processes=2, grace_s=1.0)
    started = time.monotonic()
    helper = asyncio.create_task(_stop_once_listening(supervisor, tmp_path))
    code = await asyncio.wait_for(supervisor.run(), 60)
    await helper
    assert code == 1  # killed, so not a clean stop
    assert time.monotonic() - started < 30


async def test_good_children_stop_cleanly(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path, "good", processes=2)
    helper = asyncio.create_task(_stop_once_listening(supervisor, tmp_path))
    assert await asyncio.wait_for(supervisor.run(), 60) == 0
    await helper
    assert _starts(tmp_path) == 2
