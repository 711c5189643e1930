"""Stock operations between levels of the chain, all as ledger postings.

The package, by responsibility: ``rules`` (the checks every operation makes: amounts,
references, the seller–buyer pair with the buyer's row locked), ``moves`` (stock moving: intake,
sell, clawback), ``cash`` (money between a seller and its buyer: deposit, credit limit),
``positions`` (reading, no posting: quote, low stock, balance). This module is their public face
(``from core.services import stock``).

* intake:    the operator's airtime enters the platform (issuance → platform), once per reference;
* sell:      a seller's stock goes to its direct buyer at the agreed discount; the buyer pays from
             its cash first and the rest from its available credit, all in one transaction. The
             seller sells, or the buyer buys (a purchase beyond cash plus available credit is
             refused; a buyer's own purchase that needs credit is a stock request the seller
             approves, core/services/requests/, which sells inside its decision's transaction);
* deposit:   cash a buyer handed its seller outside AirGate; it first repays used credit, the rest
             becomes cash; a reference is recorded once per seller, a repeat is refused;
* clawback:  a seller takes stock back from its buyer, with a reason;
* credit:    a seller sets its buyer's credit limit; the CREDIT account holds what is still free.

Invariant: every operation between a seller and a buyer locks the buyer's party row first, so what
it reads of the buyer (its limit, its cash, its used credit) cannot change before it commits.
"""

from core.services.stock.cash import deposit, set_credit_limit
from core.services.stock.moves import clawback, intake, sale_reference, sell
from core.services.stock.positions import Balance, LowStock, Quote, balance, low_stock, quote
from core.services.stock.rules import REFERENCE, Receipt

__all__ = [
    "REFERENCE",
    "Balance",
    "LowStock",
    "Quote",
    "Receipt",
    "balance",
    "clawback",
    "deposit",
    "intake",
    "low_stock",
    "quote",
    "sale_reference",
    "sell",
    "set_credit_limit",
]
