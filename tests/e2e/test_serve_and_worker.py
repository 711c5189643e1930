"""``airgate serve`` and ``airgate worker`` together on PostgreSQL, as production runs them: a
retailer's USSD top-up comes in over HTTP in Africa's Talking's form through ``serve``, and the
separate ``worker`` process delivers it to ``airgate sandbox`` (the stand-in aggregator). Three
real processes on a PostgreSQL database of the test's own and the test Redis."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import AIRGATE, CliRunner, free_port
from tests.helpers import eventually, killed_at_exit

SECRET = "e2e-ussd-secret-0123"
SHOP = "+254700000001"  # a demo retailer: Safaricom stock, PIN 1234
CUSTOMER = "0712345670"  # the sandbox's last-digit rules: …0 succeeds at once
DEADLINE_S = 120  # three processes and PostgreSQL on a machine that may be very busy


def _start(name: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with (cwd / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [AIRGATE, *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )


def _logs(cwd: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(cwd.glob("*.log")))


async def _answers(http: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, f"{process.args!r} exited {process.returncode}"
    try:
        async with http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


@pytest.fixture
def processes() -> Iterator[ExitStack]:
    """Whatever the test does, every process it started is killed and reaped on the way out."""
    with ExitStack() as stack:
        yield stack


@pytest.mark.slow
@pytest.mark.timeout(3 * DEADLINE_S)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_ussd_topup_through_serve_is_delivered_once_by_the_worker(
    airgate: CliRunner,
    cli_env: dict[str, str],
    database_url: str,
    redis_url: str,
    processes: ExitStack,
    tmp_path: Path,
) -> None:
    sandbox = f"http://127.0.0.1:{free_port()}"
    serve = f"http://127.0.0.1:{cli_env['AIRGATE_HTTP_PORT']}"
    cli_env.update(
        AIRGATE_DATABASE_URL=database_url,
        AIRGATE_REDIS_URL=redis_url,
        AIRGATE_USSD_SECRET=SECRET,
        AIRGATE_PROVIDER_URL=sandbox,
        AIRGATE_PROVIDER_AUTH_URL=sandbox,
        AIRGATE_SMS_URL=sandbox,
    )
    airgate("seed", "--demo", "--retailers", "1")
    sandbox_process = processes.enter_context(
        killed_at_exit(
            _start("sandbox", ["sandbox", "--port", sandbox.rsplit(":", 1)[1]], cli_env, tmp_path)
        )
    )
    serve_process = processes.enter_context(
        killed_at_exit(_start("serve", ["serve"], cli_env, tmp_path))
    )
    processes.enter_context(killed_at_exit(_start("worker", ["worker"], cli_env, tmp_path)))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        try:
            await eventually(
                lambda: _answers(http, f"{sandbox}/sandbox/stats", sandbox_process),
                what="the sandbox answering", timeout_s=DEADLINE_S, every_s=0.2,
            )  # fmt: skip
            await eventually(
                lambda: _answers(http, f"{serve}/health", serve_process),
                what="serve answering", timeout_s=DEADLINE_S, every_s=0.2,
            )  # fmt: skip
            ended = await _ussd_topup(http, serve)
            assert ended.startswith(f"END Top-up of KES 50 to {CUSTOMER} accepted."), ended
            match = re.search(r"Ref (\S+)\.", ended)
            assert match, ended
            ref = match.group(1)

            async def settled() -> dict[str, Any]:
                row: dict[str, Any] = json.loads(airgate("topup", "show", ref, "--json").stdout)
                return row if row["state"] in ("delivered", "failed") else {}

            topup = await eventually(
                settled, what=f"{ref} delivered or failed", timeout_s=DEADLINE_S, every_s=0.5
            )
            async with http.get(f"{sandbox}/sandbox/stats", params={"reference": ref}) as resp:
                stats = await resp.json()
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_logs(tmp_path)}") from None
    assert topup["state"] == "delivered", topup
    assert (topup["sends"], topup["msisdn"]) == (1, "+254712345670")
    # What AirGate sent, counted by the sandbox: once, and delivered once.
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1), stats
    assert stats["double_deliveries"] == 0
    verified = airgate("ledger", "verify", ok=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Traceback" not in _logs(tmp_path), _logs(tmp_path)


async def _ussd_topup(http: aiohttp.ClientSession, serve: str) -> str:
    """A retailer's airtime top-up, hop by hop as Africa's Talking posts it: each hop carries the
    whole path of the session's inputs. The last screen is returned."""
    inputs: list[str] = []
    screen = ""
    for typed in (None, "1", CUSTOMER, "50", "1234"):
        if typed is not None:
            inputs.append(typed)
        form = {
            "sessionId": "ATUid_e2e_1",
            "phoneNumber": SHOP,
            "text": "*".join(inputs),
            "serviceCode": "*384*123#",
            "networkCode": "63902",
        }
        async with http.post(
            f"{serve}/ussd/africastalking", params={"token": SECRET}, data=form
        ) as response:
            screen = await response.text()
            assert response.status == 200, screen
        if screen.startswith("END"):
            break
    return screen
