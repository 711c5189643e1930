"""``build_app(config)``: the sandbox as one aiohttp application.

Four faces on one port: the aggregator API (Reloadly Airtime shape, bearer token required), a
second aggregator's (DT One's DVS API under ``/v1``, HTTP Basic; sandbox/dtone.py), the SMS
gateway sink (Africa's Talking shape, ``apiKey`` header) and ``/sandbox/*`` inspection routes
(no authentication; tests and the demo only). State is in memory and dies with the process.
"""

from __future__ import annotations

from aiohttp import web

from sandbox import auth, dtone, inspection, lookups, messaging, tamper, topups
from sandbox.config import SandboxConfig
from sandbox.dtone_store import DTONE, DtOneState
from sandbox.store import STORE, Store


def build_app(config: SandboxConfig) -> web.Application:
    app = web.Application(middlewares=[tamper.outage])
    app[STORE] = Store(config)  # memory only: nothing to connect to, nothing to wait for
    app[DTONE] = DtOneState(config)

    async def stop_timers(app: web.Application) -> None:
        app[STORE].close()

    app.on_cleanup.append(stop_timers)
    app.router.add_post("/oauth/token", auth.issue_token)
    app.router.add_get("/operators/countries/{iso}", lookups.by_country)
    app.router.add_get("/operators/auto-detect/phone/{phone}/countries/{iso}", lookups.auto_detect)
    app.router.add_get("/operators/{operator_id}", lookups.by_id)
    app.router.add_get("/accounts/balance", lookups.balance)
    app.router.add_post("/topups", topups.send)
    app.router.add_get("/topups/reports/transactions", topups.report)
    app.router.add_get("/topups/{transaction_id}/status", topups.status)
    dtone.add_routes(app)  # DT One's DVS API under /v1 (sandbox/dtone.py)
    app.router.add_post("/version1/messaging", messaging.send)
    app.router.add_get("/sandbox/stats", inspection.stats)
    app.router.add_get("/sandbox/sms", inspection.sms)
    app.router.add_post("/sandbox/reset", inspection.reset)
    app.router.add_post("/sandbox/tamper", tamper.tamper)
    app.router.add_post("/sandbox/import", tamper.bulk_import)
    return app
