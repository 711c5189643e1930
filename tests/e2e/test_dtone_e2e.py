"""``AIRGATE_PROVIDER=dtone`` with the processes a user starts: ``airgate sandbox`` (its DT One face
under /v1, taking the DT One credentials from the same settings) and ``airgate worker``. A top-up
is delivered, a declined one gives the stock back, the DT One face's records agree with ours, and
neither process's log holds the API key or secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CliRunner, free_port
from tests.e2e.test_topup_e2e import (
    DECLINED_NUMBER,
    DELIVERED_NUMBER,
    SHOP,
    Rig,
    http_json,
    wait_for_http,
)

KEY, SECRET = "dt-e2e-key-7a2c41", "dt-e2e-secret-93be0d5f17"


@pytest.fixture
def rig(
    airgate: CliRunner, cli_env: dict[str, str], redis_url: str, tmp_path: Path
) -> Iterator[Rig]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cli_env.update(
        AIRGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'airgate.db'}",
        AIRGATE_REDIS_URL=redis_url,
        AIRGATE_PROVIDER="dtone",
        AIRGATE_DTONE_URL=f"{base}/v1",
        AIRGATE_DTONE_API_KEY=KEY,
        AIRGATE_DTONE_API_SECRET=SECRET,
        AIRGATE_PROVIDER_URL=base,  # the Reloadly face, which must see nothing
        AIRGATE_PROVIDER_AUTH_URL=base,
        AIRGATE_SMS_URL=base,
    )
    rig = Rig(cli=airgate, sandbox_url=base, env=cli_env, cwd=tmp_path)
    try:
        sandbox = rig.start("sandbox", "sandbox", "--port", str(port))
        airgate("seed", "--demo", "--retailers", "2")
        rig.start("worker", "worker")
        wait_for_http(f"{base}/sandbox/stats", sandbox)
        yield rig
    finally:
        for process in rig.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def test_dtone_delivers_declines_and_keeps_its_secrets(rig: Rig) -> None:
    sent = json.loads(rig.send(DELIVERED_NUMBER).stdout)
    assert rig.final(sent["id"])["state"] == "delivered"
    declined = json.loads(rig.send(DECLINED_NUMBER).stdout)
    assert rig.final(declined["id"])["state"] == "failed"
    stats = http_json(f"{rig.sandbox_url}/sandbox/dtone/stats?reference={sent['id']}")
    assert (stats["sends_by_reference"], stats["deliveries_by_reference"]) == (1, 1)
    assert (stats["delivered"], stats["failed"]) == (1, 1)
    assert http_json(f"{rig.sandbox_url}/sandbox/stats")["requests"] == 0
    stock = json.loads(rig.cli("balance", SHOP, "--json").stdout)["stock"]["safaricom-ke"]
    assert (stock["available"], stock["reserved"], stock["sold"]) == (495_000, 0, 5_000)
    assert "ledger OK" in rig.cli("ledger", "verify").stdout
    rig.stop_all()
    for name in ("worker", "sandbox"):
        log = rig.log(name)
        assert KEY not in log and SECRET not in log, name
    assert "topup.final" in rig.log("worker")


def test_the_demo_serves_its_sandbox_for_dtone_too() -> None:
    from airgate.cli._run import aggregator_url
    from airgate.cli.run import local_sandbox
    from core.settings import load_settings

    local = load_settings(provider="dtone", sandbox_host="127.0.0.1", sandbox_port=8090)
    assert aggregator_url(local) == ("http://127.0.0.1:8090/v1", "AIRGATE_DTONE_URL")
    assert local_sandbox(local)
    live = local.model_copy(update={"dtone_url": "https://dvs-api.dtone.com/v1"})
    assert not local_sandbox(live)
    assert aggregator_url(live.model_copy(update={"provider": "reloadly"}))[1] == (
        "AIRGATE_PROVIDER_URL"
    )
