"""Closing the notifier lets a "sent" mark already on its way finish, rather than cancelling it
halfway and writing it again: a write cancelled mid-statement leaves its connection's transaction
(and on SQLite the database's one write lock) to whoever cleans up after it, which is how a worker's
shutdown once met "database is locked" (tests/lifecycle/test_paths.py, under load)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, select, text

from core.context import Core
from core.models import Notification, NotificationState
from core.providers.sms import AfricasTalkingSms
from core.services.notify import Message, Notifier, add_owed
from tests.helpers import eventually


def _true_if(found: list[str]) -> Any:
    async def check() -> bool:
        return bool(found)

    return check


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a row lock from outside
async def test_close_waits_for_a_mark_in_flight_instead_of_cancelling_it(
    core: Core, sandbox_url: str
) -> None:
    settings = core.settings.model_copy(update={"sms_url": sandbox_url})
    sms = AfricasTalkingSms.from_settings(settings)
    notifier = Notifier(core=core, sms=sms, telegram=None)
    async with core.transaction() as session:
        [owed] = await add_owed(
            session, [Message(key="close-test", via="sms", recipient="+254712000999", text="hi")]
        )
    marks: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE NOTIFICATION"):
            marks.append(statement)

    event.listen(core.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with core.engine.connect() as holder:
            await holder.begin()
            await holder.execute(
                text("SELECT id FROM notification WHERE id = :id FOR UPDATE"), {"id": owed.id}
            )
            notifier.start()
            assert await notifier.send([owed]) == 1
            await eventually(_true_if(marks), what="the flusher's UPDATE waiting on the row lock")
            closing = asyncio.create_task(notifier.close())
            await asyncio.sleep(0.3)
            assert not closing.done()  # it waits for the mark in flight
            await holder.rollback()
        async with asyncio.timeout(10):
            await closing
    finally:
        event.remove(core.engine.sync_engine, "before_cursor_execute", count)
        await sms.close()
    assert len(marks) == 1, "the mark in flight was cancelled and written again"
    async with core.sessions() as session:
        state = (
            await session.execute(select(Notification.state).where(Notification.id == owed.id))
        ).scalar_one()
    assert state == NotificationState.SENT
