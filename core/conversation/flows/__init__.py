"""The flows of each role, and the machines built from them (:data:`FLOWS`, by party role), and
the flow of an account nobody linked yet (:data:`LINK_FLOW`, the engine's ``flows[LINK]``)."""

from core.conversation.flows.menus import DISTRIBUTOR, FLOWS, LINK_FLOW, RETAILER

__all__ = ["DISTRIBUTOR", "FLOWS", "LINK_FLOW", "RETAILER"]
