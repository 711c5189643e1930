"""What an endpoint declares, and the one path every API request takes.

Invariant: a request reaches its handler only after, in this order: its key is known and live
(401), its key is within its rate (429), its party is active (403), the key has the endpoint's
scope and the party its role (403), the path, query and body validate against the endpoint's
models (422 naming each field; 400 for a body that is not JSON), and, for a POST, it holds its
``Idempotency-Key`` (api/idempotency.py). A handler only translates: it calls a core service and
shapes its answer. The same declarations generate the OpenAPI document (api/openapi.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from api import problems
from api.idempotency import Idempotency, InProgress, Mismatch, Stored, fingerprint, redis_key
from api.ratelimit import RateLimiter, retry_after
from core import deadline
from core.context import Core
from core.errors import AirGateError, DeadlineExceeded
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.models import Role, Scope
from core.redis import Client
from core.services import apikeys
from core.services.apikeys import Principal

log = get_logger(__name__)

BASE = "/api/v1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces
ANY_ROLE = frozenset({Role.RETAILER, Role.DISTRIBUTOR})
RETAILER = frozenset({Role.RETAILER})
DISTRIBUTOR = frozenset({Role.DISTRIBUTOR})


@dataclass(frozen=True, slots=True)
class Api:
    """What the API's handlers share, built once at start-up (api/app.py)."""

    core: Core
    redis: Client
    queue: JobQueue
    limiter: RateLimiter
    idempotency: Idempotency
    body_too_large: web.RequestKey[bool] | None = None


API = web.AppKey("api", Api)


@dataclass(frozen=True, slots=True)
class Call:
    """One validated request, as a handler sees it."""

    api: Api
    who: Principal
    path: Any
    query: Any
    body: Any
    idempotency_key: str | None
    request: web.Request

    @property
    def core(self) -> Core:
        return self.api.core

    @property
    def client_key(self) -> str:
        """The request's Idempotency-Key as a core service's own key (at most 44 characters of
        ``[A-Za-z0-9:]``, per party): the service is idempotent on it even without Redis."""
        assert self.idempotency_key is not None
        digest = hashlib.sha256(self.idempotency_key.encode()).hexdigest()[:32]
        return f"api:{self.who.party_id}:{digest}"


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer with a status other than the endpoint's usual one (listed in its ``also``)."""

    model: BaseModel
    status: int


Handler = Callable[[Call], Awaitable[BaseModel | Reply | web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # below /api/v1, with {name} parameters
    handler: Handler
    summary: str
    scope: Scope
    roles: frozenset[Role] = ANY_ROLE
    response: type[BaseModel] | None = None
    status: int = 200
    path_params: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    tag: str = "general"
    description: str = ""
    # Other media types the answer may take, beside JSON (a statement as text/csv).
    alternatives: tuple[str, ...] = ()
    errors: tuple[int, ...] = field(default=(404, 409, 422))
    also: tuple[int, ...] = ()  # other success statuses, answered with the same model

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")

    @property
    def idempotent(self) -> bool:
        return self.method == "POST"


class Refusal(Exception):
    """Stop the request with this reply (a problem)."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


def route(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``endpoint``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        api = request.config_dict[API]
        who = None
        try:
            # Out of time before money moved: 503 with Retry-After, the Idempotency-Key free
            # again (_once lets go of it), so the same request asked again may pass.
            async with deadline.bounded(api.core.settings.api_deadline_s):
                who = await _principal(api, request)
                # Sent now; its answer is read once the request is checked (the checks are CPU
                # only): a key over its rate is 429 whatever else is wrong with the request.
                rate = api.limiter.ask(who.key_id)
                try:
                    _allowed(endpoint, who)
                    call = await _call(endpoint, api, who, request)
                except Refusal:
                    await _within_rate(rate, who)
                    raise
                await _within_rate(rate, who)
                answer = await (
                    _once(endpoint, call) if endpoint.idempotent else _run(endpoint, call)
                )
        except Refusal as refusal:
            answer = refusal.response
        except DeadlineExceeded as exc:
            answer = problems.from_error(exc)
        log.debug(
            "api.request",
            operation=endpoint.operation_id,
            key=who.prefix if who else None,
            path=request.path_qs,
            status=answer.status,
        )
        return answer

    handle.__name__ = endpoint.operation_id
    return handle


async def _principal(api: Api, request: web.Request) -> Principal:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    who = None
    if scheme.lower() == "bearer" and key.strip():
        try:
            who = await apikeys.authenticate(api.core, key.strip())
        except AirGateError as exc:
            raise Refusal(problems.from_error(exc)) from None
    if who is None:
        raise Refusal(
            problems.problem(
                401,
                "unauthorized",
                "send a live API key as `Authorization: Bearer agk_…`",
                headers={"WWW-Authenticate": 'Bearer realm="airgate"'},
            )
        )
    return who


async def _within_rate(rate: Awaitable[float], who: Principal) -> None:
    wait_s = await rate
    if wait_s > 0:
        raise Refusal(
            problems.problem(
                429,
                "rate_limited",
                f"key {who.prefix} is over its rate; retry after {retry_after(wait_s)} s",
                headers={"Retry-After": retry_after(wait_s)},
            )
        )


def _allowed(endpoint: Endpoint, who: Principal) -> None:
    if not who.active:
        raise Refusal(problems.problem(403, "party_inactive", "the key's party is not active"))
    if endpoint.scope not in who.scopes:
        detail = f"this key lacks the {endpoint.scope.value!r} scope"
        raise Refusal(problems.problem(403, "insufficient_scope", detail, scope=endpoint.scope))
    if who.role not in endpoint.roles:
        roles = " or ".join(sorted(endpoint.roles))
        raise Refusal(problems.problem(403, "not_permitted", f"only a {roles} may do this"))


async def _call(endpoint: Endpoint, api: Api, who: Principal, request: web.Request) -> Call:
    key = None
    if endpoint.idempotent:
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise Refusal(
                problems.validation(
                    [
                        {
                            "field": IDEMPOTENCY_HEADER,
                            "message": "1 to 255 printable ASCII characters",
                        }
                    ],
                    detail=f"every POST needs an {IDEMPOTENCY_HEADER} header",
                )
            )
    path = _validate(endpoint.path_params, dict(request.match_info), "path")
    query = _validate(endpoint.query, _query_dict(request), "query")
    body = None
    if endpoint.body is not None:
        body = _validate(endpoint.body, await _json(api, request), "body")
    return Call(api, who, path, query, body, key, request)


def _query_dict(request: web.Request) -> dict[str, str]:
    return {name: request.query.getone(name) for name in request.query}


async def _json(api: Api, request: web.Request) -> Any:
    if api.body_too_large is not None and request.get(api.body_too_large):
        raise Refusal(problems.problem(413, "too_large", "the body is too large"))
    raw = await request.read()
    if not raw.strip():
        return {}
    if request.content_type not in ("application/json", "application/octet-stream"):
        detail = "send the body as application/json"
        raise Refusal(problems.problem(415, "unsupported_media_type", detail))
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refusal(problems.problem(400, "malformed_body", "the body is not JSON")) from None


def _validate(model: type[BaseModel] | None, data: Any, where: str) -> Any:
    if model is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refusal(problems.validation(_errors(exc, where))) from None


def _errors(exc: ValidationError, where: str) -> list[dict[str, str]]:
    """Each wrong field by name (``amount_minor``, ``query.state``), never the value sent."""
    out = []
    for error in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or where
        out.append(
            {"field": name if where == "body" else f"{where}.{name}", "message": error["msg"]}
        )
    return out


async def _run(endpoint: Endpoint, call: Call) -> web.StreamResponse:
    try:
        answer = await endpoint.handler(call)
    except AirGateError as exc:
        return problems.from_error(exc)
    except Refusal as refusal:
        return refusal.response
    if isinstance(answer, web.StreamResponse):
        return answer
    model, status = (
        (answer.model, answer.status) if isinstance(answer, Reply) else (answer, endpoint.status)
    )
    return web.Response(
        status=status,
        body=model.model_dump_json(by_alias=True).encode(),
        content_type="application/json",
    )


async def _once(endpoint: Endpoint, call: Call) -> web.StreamResponse:
    """Run a POST once per Idempotency-Key; a duplicate gets the first one's response."""
    store = call.api.idempotency
    assert call.idempotency_key is not None
    where = redis_key(call.who.party_id, call.idempotency_key)
    canonical = b"" if call.body is None else call.body.model_dump_json(by_alias=True).encode()
    fp = fingerprint(call.request.method, call.request.path, canonical)
    try:
        earlier = await store.claim(where, fp)
    except Mismatch:
        detail = f"this {IDEMPOTENCY_HEADER} was used for a different request"
        return problems.problem(409, "idempotency_conflict", detail)
    except InProgress:
        detail = f"a request with this {IDEMPOTENCY_HEADER} is still in progress; retry later"
        return problems.problem(
            409, "idempotency_in_progress", detail, headers={"Retry-After": "1"}
        )
    if earlier is not None:
        return _replay(earlier)
    try:
        response = await _run(endpoint, call)
    except BaseException:
        await store.release(where)
        raise
    if response.status >= 500 or not isinstance(response, web.Response):
        await store.release(where)
        return response
    body = response.body
    assert isinstance(body, bytes)
    await store.store(where, fp, Stored(response.status, body, response.content_type))
    return response


def _replay(stored: Stored) -> web.Response:
    response = web.Response(status=stored.status, body=stored.body)
    response.content_type = stored.content_type
    response.headers["Idempotent-Replayed"] = "true"
    return response
