"""Small builders for tests: real parties and stock made through the real services."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from core.context import Core
from core.models import Party, Role
from core.security import Pin
from core.services import catalog, parties, stock
from core.services.audit import Actor
from core.services.verify import verify_ledger

ADMIN = Actor.cli()
SAFARICOM = "safaricom-ke"
PIN = "1234"


async def chain(core: Core, *, retailers: int = 1, tag: str = "") -> tuple[Party, list[Party]]:
    """Catalog, platform (if missing), one distributor and ``retailers`` retailers.

    ``tag`` (two digits) keeps numbers of several chains in one database apart.
    """
    await catalog.load_catalog(core, text=catalog.demo_catalog_text(), actor=ADMIN)
    async with core.sessions() as session:
        has_platform = await parties.list_parties(session, role=Role.PLATFORM, limit=1)
    if not has_platform:
        await parties.add_party(
            core, actor=ADMIN, role=Role.PLATFORM, name="Platform", msisdn="+254799999999"
        )
    prefix = f"+2547{tag or '11'}"
    distributor = await parties.add_party(
        core,
        actor=ADMIN,
        role=Role.DISTRIBUTOR,
        name="Distributor",
        msisdn=f"{prefix}900000",
        parent_ref="+254799999999",
        pin=Pin(PIN),
    )
    shops = [
        await parties.add_party(
            core,
            actor=ADMIN,
            role=Role.RETAILER,
            name=f"Shop {i}",
            msisdn=f"{prefix}{i:06d}",
            parent_ref=distributor.msisdn,
            pin=Pin(PIN),
        )
        for i in range(1, retailers + 1)
    ]
    return distributor, shops


async def give_distributor_stock(core: Core, distributor: Party, face_minor: int, ref: str) -> None:
    """Intake to the platform, pay for it and sell it on to ``distributor`` (no discount)."""
    await stock.intake(
        core, actor=ADMIN, operator_code=SAFARICOM, amount_minor=face_minor, reference=ref
    )
    await stock.deposit(
        core,
        actor=ADMIN,
        receiver_ref="+254799999999",
        payer_ref=distributor.msisdn,
        amount_minor=face_minor,
        reference=ref,
    )
    await stock.sell(
        core,
        actor=ADMIN,
        seller_ref="+254799999999",
        buyer_ref=distributor.msisdn,
        operator_code=SAFARICOM,
        face_minor=face_minor,
        key=ref,
    )


async def give_retailer_stock(
    core: Core, distributor: Party, retailer: Party, face_minor: int, ref: str
) -> None:
    """The distributor gets the stock, the retailer deposits the price and buys it."""
    await give_distributor_stock(core, distributor, face_minor, f"{ref}-d")
    await stock.deposit(
        core,
        actor=ADMIN,
        receiver_ref=distributor.msisdn,
        payer_ref=retailer.msisdn,
        amount_minor=face_minor,
        reference=ref,
    )
    await stock.sell(
        core,
        actor=ADMIN,
        seller_ref=distributor.msisdn,
        buyer_ref=retailer.msisdn,
        operator_code=SAFARICOM,
        face_minor=face_minor,
        key=ref,
    )


async def assert_ledger_ok(core: Core) -> None:
    async with core.sessions() as session:
        report = await verify_ledger(session)
    assert report.ok, report.problems


T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], *, what: str, timeout_s: float = 30, every_s: float = 0.05
) -> T:
    """Poll ``check`` until it returns something truthy (returned); fail after a generous
    ``timeout_s`` saying ``what`` never happened. For waiting on another process or task."""
    deadline = time.monotonic() + timeout_s
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s} s (last: {found!r})")
        await asyncio.sleep(every_s)
    return found


@contextmanager
def killed_at_exit(process: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """Whatever the test does with ``process`` (a wait that timed out, a failed assertion), it is
    killed and reaped on the way out if it still runs: no test leaves a process behind."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def handles_signal(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (Linux: the SigCgt mask
    in /proc): a worker stopped before it set its SIGTERM handler dies of the signal instead of
    stopping cleanly, so a test waits for this before it relies on a clean stop."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)
