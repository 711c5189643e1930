"""A settlement's month is a local calendar month, December running into January."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.services.settlement.figures import month_bounds


def test_a_month_runs_from_local_midnight_to_the_next_month_s() -> None:
    since, until = month_bounds("2026-12", "Africa/Nairobi")
    assert since.astimezone(UTC) == datetime(2026, 11, 30, 21, tzinfo=UTC)  # UTC+3
    assert until.astimezone(UTC) == datetime(2026, 12, 31, 21, tzinfo=UTC)
    assert month_bounds("2026-02", "UTC")[1] == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("period", ["2026-13", "2026-1", "2026-11-01", "nov", ""])
def test_anything_but_yyyy_mm_is_refused(period: str) -> None:
    with pytest.raises(ValueError):
        month_bounds(period, "UTC")
