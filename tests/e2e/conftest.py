"""Run the installed ``airgate`` command as a user would, in its own process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_PEPPER

AIRGATE = str(Path(sys.executable).parent / "airgate")
CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env.update(
        AIRGATE_VAR_DIR=str(tmp_path / "var"),
        AIRGATE_PIN_PEPPER=TEST_PEPPER,
        AIRGATE_HTTP_PORT=str(free_port()),
        COLUMNS="200",
    )
    return env


@pytest.fixture
def airgate(cli_env: dict[str, str], tmp_path: Path) -> CliRunner:
    def run(
        *args: str, stdin: str = "", ok: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AIRGATE, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**cli_env, **env},
            cwd=tmp_path,
            timeout=60,
        )
        if ok:
            assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result

    return run
