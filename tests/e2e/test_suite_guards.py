"""The suite cannot go green without its PostgreSQL half where it is required (CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ONE_DATABASE_TEST = "tests/integration/test_catalog.py::test_unknown_operator_and_products"


def _inner_pytest(*, require: bool) -> subprocess.CompletedProcess[str]:
    """This suite's own conftest, in a pytest of its own, pointed at a port nothing listens on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGATE_")}
    env["AIRGATE_TEST_POSTGRES_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    if require:
        env["AIRGATE_TEST_REQUIRE_POSTGRES"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", ONE_DATABASE_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("require", [False, True])
def test_a_skipped_postgresql_half_fails_the_run_only_where_required(require: bool) -> None:
    result = _inner_pytest(require=require)
    out = result.stdout + result.stderr
    assert "1 passed, 1 skipped" in out, out
    if require:
        assert result.returncode == pytest.ExitCode.TESTS_FAILED, out
        assert "1 PostgreSQL tests were skipped" in out and "failing the run" in out, out
    else:
        assert result.returncode == 0, out
