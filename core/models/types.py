"""Column types shared by the tables."""

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id.
BigId = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime = DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(UTC)
