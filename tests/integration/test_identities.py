"""Identities on channels (party_identity) on real databases, and the migration that made them."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.context import Core
from core.db import downgrade, upgrade
from core.errors import AlreadyExists
from core.services import identities, links, parties
from tests.helpers import chain


async def test_link_relink_unlink_and_who_on_a_channel_without_a_column(core: Core) -> None:
    """Any channel links without a schema change; one identity per party and channel (a new link
    replaces the old), one party per identity; who() and party_for() see each change at once."""
    distributor, [shop] = await chain(core)
    assert shop.id and distributor.id
    assert await identities.party_for(core, channel="whatsapp", external_id="+25471") is None

    await identities.link(
        core, party_id=shop.id, channel="whatsapp", external_id="+25471", how="test"
    )
    assert await identities.party_for(core, channel="whatsapp", external_id="+25471") == shop.id
    found = await parties.who(core, channel="whatsapp", user_ref="+25471")
    assert found is not None and found.id == shop.id
    assert await parties.who(core, channel="telegram", user_ref="+25471") is None

    await identities.link(core, party_id=shop.id, channel="whatsapp", external_id="+25472", how="t")
    assert await identities.party_for(core, channel="whatsapp", external_id="+25471") is None
    with pytest.raises(AlreadyExists) as taken:
        await identities.link(
            core, party_id=distributor.id, channel="whatsapp", external_id="+25472", how="t"
        )
    assert "+25472" not in str(taken.value)  # an identity may be a phone number: not in full
    await links.link(core, party_id=distributor.id, telegram_user_id=25472, how="t")  # its own
    assert await identities.party_for(core, channel="telegram", external_id="25472") == (
        distributor.id
    )

    await identities.unlink(core, channel="whatsapp", external_id="+25472")
    await identities.unlink(core, channel="whatsapp", external_id="+25472")  # nothing: no error
    assert await parties.who(core, channel="whatsapp", user_ref="+25472") is None
    assert await identities.party_for(core, channel="telegram", external_id="25472") == (
        distributor.id
    )


async def test_blocked_identity_has_no_address_until_the_user_writes_again(core: Core) -> None:
    _, [shop] = await chain(core)
    assert shop.id
    await links.link(core, party_id=shop.id, telegram_user_id=777, how="test")
    async with core.sessions() as session:
        assert await identities.address(session, party_id=shop.id, channel="telegram") == "777"
    await identities.mark_blocked(core, channel="telegram", party_ids=[shop.id])
    async with core.sessions() as session:
        assert await identities.address(session, party_id=shop.id, channel="telegram") is None
    await links.unblocked(core, telegram_user_id=777)
    async with core.sessions() as session:
        assert await identities.address(session, party_id=shop.id, channel="telegram") == "777"


async def test_migration_0005_moves_telegram_links_both_ways(core: Core) -> None:
    """Down to 0004 the links (and blocks) go back to party.telegram_user_id/telegram_blocked;
    up again they come back as identities, unchanged."""
    distributor, [shop] = await chain(core)
    assert shop.id and distributor.id
    await links.link(core, party_id=shop.id, telegram_user_id=9_000_000_001, how="test")
    await links.link(core, party_id=distributor.id, telegram_user_id=42, how="test")
    await identities.mark_blocked(core, channel="telegram", party_ids=[distributor.id])
    await identities.link(core, party_id=shop.id, channel="whatsapp", external_id="x", how="t")
    try:
        await downgrade(core.engine, "0004")
        async with core.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT id, telegram_user_id, telegram_blocked FROM party ORDER BY id")
                )
            ).all()
        linked = {r[0]: (r[1], bool(r[2])) for r in rows if r[1] is not None}
        assert linked == {shop.id: (9_000_000_001, False), distributor.id: (42, True)}
    finally:
        await upgrade(core.engine)
    async with core.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT channel, external_id, party_id, blocked FROM party_identity")
            )
        ).all()
    assert {(r[0], r[1], r[2], bool(r[3])) for r in rows} == {
        ("telegram", "9000000001", shop.id, False),
        ("telegram", "42", distributor.id, True),
    }
