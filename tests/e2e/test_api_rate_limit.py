"""The API's per-key rate limit holds across two ``airgate serve`` processes sharing Redis: a key's
burst spent half on each is the key's one burst, and the next request on either is 429 with a
Retry-After."""

from __future__ import annotations

import json
import subprocess
from contextlib import ExitStack
from pathlib import Path

import aiohttp

from tests.e2e.conftest import AIRGATE, CliRunner, free_port
from tests.helpers import eventually, killed_at_exit

BURST = 10
SHOP = "+254700000001"


def _start(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    with (cwd / f"serve-{port}.log").open("wb") as log:
        return subprocess.Popen(
            [AIRGATE, "serve"],
            env={**env, "AIRGATE_HTTP_PORT": str(port)},
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_a_keys_rate_is_one_across_two_serve_processes(
    airgate: CliRunner, cli_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    cli_env.update(
        AIRGATE_REDIS_URL=redis_url,
        AIRGATE_API_BURST=str(BURST),
        AIRGATE_API_RATE_PER_S="0.01",  # one more request every 100 s: none during the test
    )
    airgate("seed", "--demo", "--retailers", "1")
    made = airgate("apikey", "create", SHOP, "--scopes", "read", "--json")
    key = json.loads(made.stdout)["key"]
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(killed_at_exit(_start(cli_env, tmp_path, port)))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession() as http:

            async def up(base: str) -> bool:
                try:
                    async with http.get(f"{base}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            for base in bases:
                await eventually(lambda base=base: up(base), what=f"{base} answers", timeout_s=60)
            statuses = []
            for i in range(BURST):
                async with http.get(f"{bases[i % 2]}/api/v1/balance", headers=headers) as r:
                    statuses.append(r.status)
            assert statuses == [200] * BURST
            for base in bases:
                async with http.get(f"{base}/api/v1/balance", headers=headers) as r:
                    assert r.status == 429
                    assert int(r.headers["Retry-After"]) >= 1
                    problem = await r.json(content_type=None)
                    assert problem["type"] == "urn:airgate:problem:rate_limited"
                    assert key not in await r.text()
