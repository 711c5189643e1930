"""SQL tables (SQLModel). Importing this package registers every table on ``SQLModel.metadata``."""

from core.models.apikey import ApiKey, Scope
from core.models.audit import AuditEvent
from core.models.backoffice import ReportSend, SettlementRun
from core.models.broadcast import (
    Broadcast,
    BroadcastRecipient,
    BroadcastState,
    PartyTag,
    RecipientState,
)
from core.models.callback import CallbackDelivery, CallbackEndpoint, CallbackState
from core.models.catalog import (
    Agreement,
    NumberPrefix,
    Operator,
    OperatorProvider,
    Product,
    ProductKind,
)
from core.models.channel import UssdSessionEnd
from core.models.ledger import Account, AccountKind, Reservation, ReservationStatus, Transfer
from core.models.party import Party, PartyIdentity, PartyStatus, Role
from core.models.recon import ReconLine
from core.models.stock import RequestState, StockRequest
from core.models.topup import (
    CaseState,
    Notification,
    NotificationState,
    Resolution,
    SupportCase,
    Topup,
    TopupState,
)

__all__ = [
    "ApiKey",
    "Scope",
    "StockRequest",
    "RequestState",
    "RecipientState",
    "PartyTag",
    "BroadcastState",
    "BroadcastRecipient",
    "Broadcast",
    "Account",
    "AccountKind",
    "Agreement",
    "AuditEvent",
    "CallbackDelivery",
    "CallbackEndpoint",
    "CallbackState",
    "CaseState",
    "Notification",
    "NotificationState",
    "NumberPrefix",
    "Operator",
    "OperatorProvider",
    "Party",
    "PartyIdentity",
    "PartyStatus",
    "Product",
    "ProductKind",
    "ReconLine",
    "Reservation",
    "ReservationStatus",
    "Resolution",
    "Role",
    "SupportCase",
    "Topup",
    "TopupState",
    "Transfer",
    "UssdSessionEnd",
    "ReportSend",
    "SettlementRun",
]
