"""Who did what: one audit row per state-changing action, in the action's own transaction."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.models import AuditEvent
from core.models.types import utcnow

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Actor:
    """The one acting: a party on a channel, an operator at the CLI, or the system itself."""

    label: str
    channel: str
    party_id: int | None = None

    @classmethod
    def cli(cls) -> Actor:
        return cls(label=f"cli:{getpass.getuser()}", channel="cli")

    @classmethod
    def system(cls) -> Actor:
        return cls(label="system", channel="system")

    @classmethod
    def party(cls, party_id: int, channel: str) -> Actor:
        return cls(label=f"party:{party_id}", channel=channel, party_id=party_id)

    @property
    def is_admin(self) -> bool:
        """CLI operators and the system act as the platform's administrators."""
        return self.party_id is None


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    subject_party_id: int | None = None,
    reference: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        audit_t.insert().values(
            at=utcnow(),
            actor=actor.label,
            channel=actor.channel,
            action=action,
            subject_party_id=subject_party_id,
            reference=reference,
            details=details or {},
        )
    )
