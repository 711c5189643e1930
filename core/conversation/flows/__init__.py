"""The flows of each role, and the machines built from them (:data:`FLOWS`, by party role)."""

from core.conversation.flows.menus import DISTRIBUTOR, FLOWS, RETAILER

__all__ = ["DISTRIBUTOR", "FLOWS", "RETAILER"]
