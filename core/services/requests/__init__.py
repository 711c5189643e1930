"""Stock requests: a retailer's purchase that needs its distributor's credit waits for the
distributor's decision.

The package, by responsibility: ``ask`` (a buyer asks; a seller lists what awaits it), ``decide``
(approve with the sale, refuse, or fail: once), ``messages`` (what each change owes the other
party, through the notification outbox). This module is their public face.

Invariant: a request is decided at most once, by a conditional UPDATE on ``state = 'pending'``.
Approving runs that UPDATE and the sale (:func:`core.services.stock.sell`, keyed ``req:{id}``) in
one transaction: on PostgreSQL a concurrent approval or refusal waits on the request's row and then
finds it decided, on SQLite the write lock queues them; either way the stock moves once. A sale
refused at approval time (credit used up, stock gone) rolls back, and the request is marked
``failed`` with the reason instead.

Each change owes a message (to the seller when a request is made; to the buyer when it is decided),
written to the notification outbox in the same transaction and enqueued after the commit; the
sweeper sends any whose job was lost.
"""

from core.services.requests.ask import Created, Pending, create, pending_for
from core.services.requests.decide import Decision, approve, refuse

__all__ = ["Created", "Decision", "Pending", "approve", "create", "pending_for", "refuse"]
