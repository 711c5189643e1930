"""The REST API for resellers' own systems, mounted at ``/api/v1`` on ``airgate serve``.

One more way in beside USSD and Telegram: each route checks the key, its scopes and its party,
validates the request against the same pydantic model the OpenAPI document is generated from, and
calls a core service (never the conversation engine). docs/API.md is the reference.
"""
