"""AirGate's core: domain, money, ledger, services and settings.

Nothing here imports a channel (``aiohttp.web``, ``telegram``) or connects at import time;
resources are built by the entry points in ``airgate/`` and passed down.
"""
