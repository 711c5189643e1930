"""A top-up end to end with the processes a user starts: ``airgate sandbox`` (the stand-in
aggregator and SMS gateway), ``airgate worker`` and the ``airgate topup`` commands, on a SQLite file
and the test Redis. What it proves: the PIN-confirmed top-up reaches the sandbox once, the customer
gets the receipt SMS, a declined one gives the stock back, the ledger still holds, and both
processes stop cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AIRGATE, CliRunner, free_port

SHOP = "+254700000001"  # a demo retailer: KES 5,000 of Safaricom stock, PIN 1234
DELIVERED_NUMBER = "0712345670"  # the sandbox's last-digit rules: …0 succeeds at once
DECLINED_NUMBER = "0712345671"  # …1 is declined (400, recorded FAILED)
START_TIMEOUT_S = 15
FINAL_TIMEOUT_S = 15


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def sms_to(base: str, number: str) -> list[dict[str, Any]]:
    return list(http_json(f"{base}/sandbox/sms?to={urllib.parse.quote(number)}"))


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = FINAL_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} after {timeout_s} s"
        time.sleep(0.1)
    return found


def wait_for_http(url: str, process: subprocess.Popen[bytes]) -> None:
    def answers() -> bool:
        assert process.poll() is None, f"{process.args} exited {process.returncode}"
        try:
            http_json(url)
        except OSError:
            return False
        return True

    wait_until(f"{url} did not answer", answers, START_TIMEOUT_S)


@dataclass
class Rig:
    """``airgate sandbox`` and ``airgate worker`` running; ``cli`` runs any other command."""

    cli: CliRunner
    sandbox_url: str
    env: dict[str, str]
    cwd: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.cwd / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [AIRGATE, *args], env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.cwd / f"{name}.log").read_text(encoding="utf-8")

    def send(self, number: str, *flags: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "topup", "send", SHOP, number, "50", "--pin-stdin", "--json", *flags,
            stdin="1234\n", ok=ok,
        )  # fmt: skip

    def final(self, topup_id: str) -> dict[str, Any]:
        def shown() -> dict[str, Any] | None:
            row: dict[str, Any] = json.loads(self.cli("topup", "show", topup_id, "--json").stdout)
            return row if row["state"] in ("delivered", "failed") else None

        try:
            found: dict[str, Any] = wait_until(f"{topup_id} not final", shown)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{self.log('worker')[-3000:]}") from None
        return found

    def stop_all(self) -> None:
        """SIGTERM, as a service manager stops them: exit 0 and no traceback."""
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            assert process.wait(timeout=15) == 0, self.log(name)
            assert "Traceback" not in self.log(name), self.log(name)


@pytest.fixture
def rig(
    airgate: CliRunner, cli_env: dict[str, str], redis_url: str, tmp_path: Path
) -> Iterator[Rig]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cli_env.update(
        AIRGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'airgate.db'}",
        AIRGATE_REDIS_URL=redis_url,
        AIRGATE_PROVIDER_URL=base,
        AIRGATE_PROVIDER_AUTH_URL=base,
        AIRGATE_SMS_URL=base,
    )
    rig = Rig(cli=airgate, sandbox_url=base, env=cli_env, cwd=tmp_path)
    try:
        sandbox = rig.start("sandbox", "sandbox", "--port", str(port))
        # On a fresh database: seed migrates it first, so the worker's start-up sweep finds tables.
        airgate("seed", "--demo", "--retailers", "2")
        rig.start("worker", "worker")
        wait_for_http(f"{base}/sandbox/stats", sandbox)
        yield rig
    finally:
        for process in rig.processes.values():
            if process.poll() is None:  # the test failed before stop_all
                process.kill()
                process.wait()


def test_a_topup_reaches_the_phone_and_a_declined_one_gives_the_stock_back(rig: Rig) -> None:
    sent = json.loads(rig.send(DELIVERED_NUMBER).stdout)
    assert (sent["state"], sent["amount_minor"], sent["msisdn"]) == (
        "reserved",
        5_000,
        "+254712345670",
    )
    assert rig.final(sent["id"])["state"] == "delivered"
    receipt = wait_until("no receipt SMS", lambda: sms_to(rig.sandbox_url, "+254712345670"))
    assert sent["id"] in receipt[0]["message"] and "KES 50" in receipt[0]["message"]
    told = wait_until("the retailer was not told", lambda: sms_to(rig.sandbox_url, SHOP))
    assert "delivered" in told[0]["message"]
    stats = http_json(f"{rig.sandbox_url}/sandbox/stats?reference={sent['id']}")
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1)
    assert stats["double_deliveries"] == 0

    declined = json.loads(rig.send(DECLINED_NUMBER).stdout)
    final = rig.final(declined["id"])
    assert final["state"] == "failed"
    stock = json.loads(rig.cli("balance", SHOP, "--json").stdout)["stock"]["safaricom-ke"]
    # KES 5,000 seeded, KES 50 sold; the declined KES 50 is back, nothing left reserved.
    assert (stock["available"], stock["reserved"], stock["sold"]) == (495_000, 0, 5_000)
    assert "ledger OK" in rig.cli("ledger", "verify").stdout
    rig.stop_all()
    # A full phone number never reaches a log line (docs/SECURITY.md), arq's included.
    worker_log = rig.log("worker")
    assert "topup.final" in worker_log
    assert "+254712345670" not in worker_log and "712345670" not in worker_log


def test_the_repeat_guard_names_repeat_and_the_pin_is_asked_once(rig: Rig) -> None:
    first = json.loads(rig.send(DELIVERED_NUMBER).stdout)
    again = rig.send(DELIVERED_NUMBER, ok=False)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.startswith("airgate: the same top-up (KES 50 to +254712345670) was made")
    assert again.stderr.count("\n") == 1 and "--repeat" in again.stderr
    repeated = json.loads(rig.send(DELIVERED_NUMBER, "--repeat").stdout)
    assert repeated["id"] != first["id"]
    assert rig.final(repeated["id"])["state"] == "delivered"

    # At a terminal: one hidden prompt, no "repeat for confirmation" (a PIN is checked, not set).
    output = at_a_terminal(
        [AIRGATE, "topup", "send", SHOP, "0712345680", "20"], env=rig.env, cwd=rig.cwd
    )
    assert output.count("PIN") == 1 and "confirmation" not in output.lower(), output
    assert "reserved; the worker delivers it" in output
    rig.stop_all()


def at_a_terminal(args: list[str], *, env: dict[str, str], cwd: Path) -> str:
    """Run ``args`` on a pseudo-terminal, type the PIN once, return what it showed."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        args, stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=cwd,
        start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    typed = False
    deadline = time.monotonic() + FINAL_TIMEOUT_S
    try:
        while time.monotonic() < deadline and b"onfirm" not in shown:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: every holder of the terminal has closed it: it ended
                    break
                shown += chunk
            # "PIN:" comes from click, the space after it from getpass once echo is off (its
            # TCSAFLUSH would drop a PIN typed earlier).
            if not typed and b"PIN: " in shown:
                os.write(controller, b"1234\n")
                typed = True
        text = shown.decode(errors="replace")
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still waiting after the PIN was typed once: {text!r}") from None
        assert process.returncode == 0, text
        return text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
