"""schemathesis against a live ``airgate serve`` from its own OpenAPI document: whatever the
generated requests (valid and not), no 5xx, and every answer's status, media type, headers and
body match what the document declares for it.

One real ``serve`` process per module, on a seeded SQLite database and the test Redis; each
operation is called with a key of the role it is for (every scope), so the generator reaches the
handlers, not only the 403s.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from api.app import api_version, endpoints
from api.openapi import document
from tests.conftest import REDIS_TEST_URL, TEST_PEPPER
from tests.e2e.conftest import AIRGATE, free_port
from tests.helpers import killed_at_exit

RETAILER = "+254700000001"
DISTRIBUTOR = "+254700000100"
START_S = 60


class Live:
    def __init__(self, base: str, keys: dict[str, str]) -> None:
        self.base = base
        self.keys = keys


def _airgate(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [AIRGATE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"serve did not answer in {START_S} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    cwd = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_VAR_DIR=str(cwd / "var"),
        AIRGATE_PIN_PEPPER=TEST_PEPPER,
        AIRGATE_HTTP_PORT=str(port),
        AIRGATE_REDIS_URL=REDIS_TEST_URL,
        AIRGATE_API_RATE_PER_S="10000",
        AIRGATE_API_BURST="10000",
        AIRGATE_DB_POOL_SIZE="2",
    )
    _airgate(env, cwd, "seed", "--demo", "--retailers", "3")
    keys = {}
    for role, party in (("retailer", RETAILER), ("distributor", DISTRIBUTOR)):
        made = _airgate(
            env, cwd, "apikey", "create", party, "--scopes", "read,topup,stock,manage", "--json"
        )
        keys[role] = json.loads(made)["key"]
    log = cwd / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [AIRGATE, "serve"], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    with killed_at_exit(process):
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/healthz", process, log)
        yield Live(base, keys)
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


# The document as the app builds it; the first test proves the live process serves this very one
# (schemathesis's own loader from a fixture does not run on pytest 9).
DOCUMENT = document(endpoints(), version=api_version())
schema = schemathesis.openapi.from_dict(DOCUMENT)
# Valid requests and invalid ones (wrong types, missing fields, bad headers): neither may be a 5xx.
schema.config.generation.update(modes=list(GenerationMode))


def test_the_live_document_is_the_one_tested(live: Live) -> None:
    with urllib.request.urlopen(f"{live.base}/api/v1/openapi.json", timeout=10) as answer:
        assert json.loads(answer.read()) == DOCUMENT


CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.timeout(600)
def test_the_api_keeps_its_own_document(case: Any, live: Live) -> None:
    roles = case.operation.definition.raw.get("x-roles", ["retailer"])
    key = live.keys["retailer" if "retailer" in roles else "distributor"]
    case.call_and_validate(
        base_url=live.base, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS
    )
