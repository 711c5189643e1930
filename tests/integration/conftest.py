"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.config import SandboxConfig
from tests.lifecycle.conftest import sandbox_serving


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    """The sandbox (aggregator and SMS gateway) over HTTP, with its default rules."""
    async with sandbox_serving(SandboxConfig(seed=7)) as url:
        yield url
