"""Polling every aggregator account's balance and alerting the platform's operators when one runs
low, before top-ups start failing (docs/ALERTS.md, "Aggregator float").

Invariant: one alert per crossing (core/routing/floats.py decides, atomically in Redis), written
to the notification outbox like every other alert, to the platform party (its Telegram when
linked, else SMS), keyed by the account and the reading so a second write is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from core.context import Core
from core.errors import NotFound, ProviderError
from core.logging import get_logger
from core.models.types import utcnow
from core.money import format_minor
from core.providers.port import ProviderBalance
from core.redis import Client
from core.routing import floats
from core.routing.router import Account
from core.services.chain import platform
from core.services.notify import Message, add_owed
from core.services.requests.messages import message_to

log = get_logger(__name__)

Outbox = Callable[[Sequence[Message]], Awaitable[object]]  # sends what a commit owes


async def poll(
    core: Core, *, redis: Client, accounts: Sequence[Account], outbox: Outbox
) -> list[str]:
    """Read every account's balance (concurrently), keep the readings, and alert on each that
    crossed below its ``low_float_minor``; the names of the accounts alerted."""
    readings = await asyncio.gather(*(_poll_one(redis, account) for account in accounts))
    low = [reading for reading in readings if reading is not None]
    for account, balance in low:
        await _alert(core, account, balance, outbox=outbox)
    return [account.name for account, _ in low]


async def _poll_one(redis: Client, account: Account) -> tuple[Account, ProviderBalance] | None:
    """The account and its balance when this reading crossed below its threshold."""
    try:
        balance = await account.provider.balance()  # bounded by the adapter's own time-outs
    except ProviderError as exc:
        log.warning("float.unreadable", account=account.name, error=str(exc))
        await floats.record_error(redis, account=account.name, error=str(exc))
        return None
    crossed = await floats.record(
        redis,
        account=account.name,
        balance_minor=balance.balance_minor,
        currency=balance.currency,
        low_minor=account.config.low_float_minor,
    )
    return (account, balance) if crossed else None


async def _alert(core: Core, account: Account, balance: ProviderBalance, *, outbox: Outbox) -> None:
    fields = {
        "account": account.name,
        "balance": format_minor(balance.balance_minor, balance.currency),
        "limit": format_minor(account.config.low_float_minor, balance.currency),
    }
    log.warning("float.low", **fields)
    async with core.transaction() as session:
        try:
            owner = await platform(session)
        except NotFound:
            return  # no platform party to tell: the log line and /metrics still say it
        key = f"float:{account.name}:{utcnow():%Y%m%d%H%M%S%f}"
        message = await message_to(core, session, owner, key, "alert.low_float", fields)
        owed = await add_owed(session, [message])
    await outbox(owed)
