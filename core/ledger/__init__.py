"""The double-entry ledger (docs/LEDGER.md): what a posting is (``postings``), the statements
every database runs (``generic``), PostgreSQL's one-statement hot path (``pg_fast``), and the
:class:`Ledger` a process holds, which picks between them (``ledger``)."""

from core.ledger.generic import account_balances
from core.ledger.ledger import Ledger
from core.ledger.postings import AccountRef, Leg, Move, Overdraft, Posting

__all__ = ["AccountRef", "Leg", "Ledger", "Move", "Overdraft", "Posting", "account_balances"]
