"""The multi-process tests' fixtures: a PostgreSQL database of the test's own (tests/scale/
harness.py starts the processes on it). They need a PostgreSQL server and Debian's HAProxy
(``/usr/sbin/haproxy``; ``.ci/run`` installs it when it is missing) and say so when either is
absent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_SKIP_REASON, PG_UP
from tests.scale.harness import HAPROXY, scale_database


@pytest.fixture
def scale_db() -> Iterator[str]:
    if not PG_UP:
        pytest.skip(PG_SKIP_REASON)
    if not Path(HAPROXY).exists():
        pytest.skip(f"no HAProxy at {HAPROXY} (Debian's haproxy package)")
    with scale_database(f"airgate_scale_{os.getpid()}") as url:
        yield url
