"""A database error never carries a statement's parameters (a customer's number) into its text."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.context import Core

NUMBER = "+254712345678"


async def test_a_database_error_does_not_carry_its_parameters(core: Core) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with core.engine.connect() as conn:
            await conn.execute(text("SELECT * FROM no_such_table WHERE x = :n"), {"n": NUMBER})
    assert NUMBER not in str(caught.value) and NUMBER not in repr(caught.value)
