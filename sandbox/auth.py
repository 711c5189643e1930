"""OAuth client credentials, as Reloadly's ``POST /oauth/token``, and the bearer check of every API
route (401 ``TOKEN_EXPIRED`` or ``INVALID_TOKEN``, the codes a client renews on)."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from sandbox.store import STORE, TokenState
from sandbox.wire import error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REFUSED = {
    TokenState.EXPIRED: "Access token has expired, request a new one",
    TokenState.INVALID: "Full authentication is required to access this resource",
}


async def issue_token(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or body.get("grant_type") != "client_credentials":
        return error(400, "INVALID_REQUEST", "grant_type must be client_credentials", request.path)
    if (body.get("client_id"), body.get("client_secret")) != (
        store.config.client_id,
        store.config.client_secret,
    ):
        return error(401, "INVALID_CREDENTIALS", "Access Denied", request.path)
    return web.json_response(
        {
            "access_token": store.issue_token(),
            "token_type": "Bearer",
            "expires_in": max(1, math.ceil(store.config.token_ttl_s)),
            "scope": "developer",
        }
    )


def authorized(handler: Handler) -> Handler:
    """Run ``handler`` only with a bearer token the sandbox issued and that has not expired."""

    @wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        state = (
            request.app[STORE].token_state(token.strip())
            if scheme.lower() == "bearer"
            else TokenState.INVALID
        )
        if state is not TokenState.VALID:
            return error(401, state.value, _REFUSED[state], request.path)
        return await handler(request)

    return checked
