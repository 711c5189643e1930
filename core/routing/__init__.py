"""Routing top-ups across aggregator accounts: which account gets a top-up (router.py), how each
(account, operator) is doing (health.py, a circuit breaker in Redis), the accounts' float
and what an operator is shown of it. docs/PROVIDERS.md, "Routing".
"""
