"""The API's aiohttp sub-application, mounted at ``/api/v1`` by ``airgate serve``.

Plug-in point: each resource module exports ``ENDPOINTS``, a tuple of
:class:`api.endpoint.Endpoint`; :data:`RESOURCES` lists the modules, and everything else
(routes, the OpenAPI document, the reference page) is collected from them. A new resource is a
module and one line there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from api import account, callbacks, catalog, openapi, problems, reports, retailers, stock, topups
from api.endpoint import API, BASE, Api, Endpoint, route
from api.idempotency import Idempotency
from api.ratelimit import RateLimiter
from core.context import Core
from core.jobs.queue import JobQueue
from core.logging import get_logger
from core.redis import Client
from core.redis_pipeline import hot_client
from core.settings import Settings

log = get_logger(__name__)

RESOURCES: tuple[ModuleType, ...] = (
    account,
    catalog,
    topups,
    stock,
    retailers,
    reports,
    callbacks,
)


def endpoints(resources: Iterable[ModuleType] = RESOURCES) -> list[Endpoint]:
    return [endpoint for module in resources for endpoint in module.ENDPOINTS]


def api_version() -> str:
    try:
        return version("airgate")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return "0"


def build(
    settings: Settings,
    *,
    core: web.AppKey[Core],
    redis: web.AppKey[Client],
    queue: web.AppKey[JobQueue],
    main: web.Application,
    body_too_large: web.RequestKey[bool] | None = None,
) -> web.Application:
    """The sub-application; its resources come from ``main``'s (the core and Redis), read at
    start-up, after ``main`` built them."""
    app = web.Application(middlewares=[problem_pages])
    found = endpoints()
    doc = openapi.document(found, version=api_version())
    doc_body = orjson.dumps(doc)
    page = openapi.page(doc)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        client = main[redis]
        hot = hot_client(client)  # rate and idempotency, every request
        app[API] = Api(
            core=main[core],
            redis=client,
            queue=main[queue],
            limiter=RateLimiter(hot, rate_per_s=settings.api_rate_per_s, burst=settings.api_burst),
            idempotency=Idempotency(hot, ttl_s=settings.api_idempotency_ttl_s),
            body_too_large=body_too_large,
        )
        yield

    app.cleanup_ctx.append(resources)

    async def openapi_json(_request: web.Request) -> web.Response:
        return web.Response(body=doc_body, content_type="application/json")

    async def docs(_request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
    for endpoint in found:
        app.router.add_route(endpoint.method, endpoint.path, route(endpoint))
    return app


def mount(main: web.Application, api: web.Application) -> None:
    main.add_subapp(BASE, api)


@web.middleware
async def problem_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own answers (no such path, a method not allowed) and anything unexpected, as
    problems too; an unexpected error is logged (the log masks numbers and secrets) and is a 500
    that says nothing of it."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "no_such_path", 405: "method_not_allowed"}.get(exc.status, "http_error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problems.problem(exc.status, code, exc.reason, headers=headers)
    except Exception:
        log.exception("api.unexpected", path=request.path, method=request.method)
        return problems.problem(500, "internal", "something went wrong on our side; it is logged")
