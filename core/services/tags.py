"""A party's region and tags: labels a distributor reaches its retailers by (broadcast audiences).

Both are kept lower-case and trimmed, so "Nairobi " and "nairobi" are one audience; a tag is at
most 40 characters of letters, digits, ``-`` and ``_``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import delete, select

from core.context import Core
from core.errors import InputError
from core.models import Party, PartyTag
from core.services.audit import Actor, record
from core.services.parties import change, get_party, may_manage

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
tag_t = PartyTag.__table__  # type: ignore[attr-defined]


def label(text: str) -> str:
    """``text`` as a tag or region, or InputError."""
    value = text.strip().lower()
    if not _TAG.match(value):
        raise InputError(reason=f"not a tag: {text!r} (letters, digits, - and _; at most 40)")
    return value


async def set_region(core: Core, *, actor: Actor, ref: str | int, region: str | None) -> Party:
    value = label(region) if region else None
    return await change(
        core, actor=actor, ref=ref, field="region", value=value, action="party.region"
    )


async def retag(
    core: Core, *, actor: Actor, ref: str | int, add: Sequence[str], remove: Sequence[str]
) -> tuple[Party, list[str]]:
    """Add and remove tags; the party and its tags after."""
    adding, removing = {label(t) for t in add}, {label(t) for t in remove}
    async with core.transaction() as session:
        party = await get_party(session, ref, country=core.settings.country, lock=True)
        await may_manage(session, actor, party)
        have = set(
            (await session.execute(select(tag_t.c.tag).where(tag_t.c.party_id == party.id)))
            .scalars()
            .all()
        )
        if removing:
            await session.execute(
                delete(tag_t).where(tag_t.c.party_id == party.id, tag_t.c.tag.in_(removing))
            )
        for tag in sorted(adding - have - removing):
            session.add(PartyTag(party_id=party.id or 0, tag=tag))
        after = sorted((have | adding) - removing)
        await record(
            session,
            actor=actor,
            action="party.tags",
            subject_party_id=party.id,
            details={"added": sorted(adding - have), "removed": sorted(removing & have)},
        )
    return party, after
