"""Broadcasts: a distributor's message to an audience of its retailers, sent by the worker.

The package, by responsibility: ``audience`` (who a broadcast goes to, and the preview),
``create`` (writing a broadcast and its recipients once), ``report`` (counts and their wording),
``sender`` (the worker's sender under a Redis lease), ``progress`` (the progress message in the
distributor's chat). This module is their public face (``from core.services import broadcast``).

Invariants (see core/models/broadcast.py for the tables):
- The audience is resolved and every recipient row written when the broadcast is confirmed, in one
  transaction keyed by the confirming turn: a retried confirmation finds the same broadcast.
- At most once per recipient: a row is claimed (``pending → sending``, committed) before its message
  goes out, and only one sender works on a broadcast at a time (a Redis lease, renewed while it
  runs). A sender that takes over a dead one's broadcast marks what it left in ``sending`` as
  ``unconfirmed``, never sends it again. A 429, a refused connection or a 5xx means "not sent": the
  row goes back to ``pending`` and is retried; a time-out means "maybe sent": ``unconfirmed``.
- Telegram sends go through the shared :class:`~core.ratelimit.Limiter` (the bot's rate, one a
  second per chat, 429 ``retry_after`` honoured by every sender); retailers without Telegram, or
  who blocked the bot, get an SMS (in batches: one gateway call per batch).
- A sender works for a time budget, then the job enqueues the next part; the sweeper re-enqueues
  a broadcast still ``sending`` whose lease has lapsed (its worker died).
- Progress is edited into one message in the distributor's chat every few seconds; the final report
  (delivered, failed, blocked the bot, unconfirmed) is written once, by whoever moves the broadcast
  to ``done`` (a conditional UPDATE).
"""

from core.services.broadcast.audience import Audience, Preview, preview
from core.services.broadcast.create import MAX_TEXT, Created, create
from core.services.broadcast.report import Report, describe, report
from core.services.broadcast.sender import LEASE_PREFIX, Sender, leased, open_broadcasts

__all__ = [
    "LEASE_PREFIX",
    "MAX_TEXT",
    "Audience",
    "Created",
    "Preview",
    "Report",
    "Sender",
    "create",
    "describe",
    "leased",
    "open_broadcasts",
    "preview",
    "report",
]
