"""The USSD routes: ``POST /ussd/{gateway}`` for each dialect, guarded, into the shared engine.

A route only translates (STYLE.md rule 2): guard → dialect parse → ``Engine.handle`` → the page
the screen asked for, rendered within the gateway's limit → dialect reply. Whatever fails inside
the engine is logged and answered as a polite END: a 5xx would make the gateway drop the user with
a network error instead. A store that is not there (StoreUnavailable: Redis or the database away)
is "not available for a moment", in the caller's language when the database can still say it.
Each hop runs within its gateway's budget (AIRGATE_HOP_DEADLINE_S, or the gateway's
``deadline_s``): one that cannot finish in it gives up before money moves and says "try again"
(core/deadline.py), while the gateway still waits for the answer.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import lru_cache

from aiohttp import web
from prometheus_client import Counter, Histogram

from core import deadline
from core.conversation.engine import Engine, Style
from core.conversation.flow import end
from core.conversation.types import Screen
from core.errors import DeadlineExceeded, StoreUnavailable
from core.i18n import DEFAULT_LANGUAGE, t
from core.logging import get_logger
from core.models import UssdSessionEnd
from core.settings import Settings, UssdGateway
from ussd.channel import CHANNEL
from ussd.dialects import DIALECTS
from ussd.gateway import BadRequest, Dialect, Farewell, Guard, Hangup, TooLong, guard_for
from ussd.render import Limits, pages

log = get_logger(__name__)
NOT_NOW = f"error.{StoreUnavailable.code}"
TOO_LATE = f"error.{DeadlineExceeded.code}"

HOPS = Counter("airgate_ussd_hops_total", "USSD hops answered", ["gateway", "final"])
REFUSED = Counter("airgate_ussd_refused_total", "USSD requests refused", ["gateway", "status"])
HOP_SECONDS = Histogram(
    "airgate_ussd_hop_seconds",
    "Time to answer a USSD hop",
    ["gateway"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class Gateway:
    """One gateway's routes; what every hop needs is built once here."""

    def __init__(
        self,
        *,
        dialect: Dialect,
        guard: Guard,
        limits: Limits,
        engine: web.AppKey[Engine],
        deadline_s: float,
    ) -> None:
        self.dialect = dialect
        self.guard = guard
        self.limits = limits
        self.engine = engine
        self.deadline_s = deadline_s
        self.style = Style(pages=self.page_count, last_input=dialect.last_input)
        name = dialect.name
        self._hops = {True: HOPS.labels(name, "true"), False: HOPS.labels(name, "false")}
        self._seconds = HOP_SECONDS.labels(name)
        refusals = ("400", "403", "too_long")
        self._refused = {status: REFUSED.labels(name, status) for status in refusals}

    async def hop(self, request: web.Request) -> web.Response:
        if not self.guard.allows(request):
            self._refused["403"].inc()
            return web.Response(status=403, text="forbidden")
        started = time.perf_counter()
        engine = request.app[self.engine]
        try:
            turn, echo = await self.dialect.parse(request)
        except BadRequest as exc:
            self._refused["400"].inc()
            return web.Response(status=400, text=f"bad request: {exc}")
        except Hangup:
            return self.dialect.reply("", True, {})
        except Farewell as exc:  # too long, or not for AirGate: an END the caller can read
            if isinstance(exc, TooLong):
                self._refused["too_long"].inc()
            screen = await engine.farewell(channel=CHANNEL.name, user_ref=exc.user_ref, key=exc.key)
            return self.dialect.reply(self.page(screen), True, {})
        try:
            async with deadline.bounded(self.deadline_s):
                screen = await engine.handle(turn, self.style)
        except DeadlineExceeded:  # nothing moved, the session as it was: dial again
            log.warning("USSD hop out of time", gateway=self.dialect.name)
            screen = await engine.farewell(
                channel=CHANNEL.name, user_ref=turn.user_ref, key=TOO_LATE
            )
        except StoreUnavailable as exc:  # the database can name the caller's language if Redis is
            store = exc.fields["store"]
            log.warning("USSD hop without a store", gateway=self.dialect.name, store=store)
            ref = turn.user_ref if store == "redis" else None
            screen = await engine.farewell(channel=CHANNEL.name, user_ref=ref, key=NOT_NOW)
        except Exception:
            log.exception("USSD hop failed", gateway=self.dialect.name)
            screen = end(t(DEFAULT_LANGUAGE, "error.unexpected"))
        if self.dialect.describe is not None:
            echo = {**echo, **self.dialect.describe(screen)}
        response = self.dialect.reply(self.page(screen), screen.final, echo)
        self._hops[screen.final].inc()
        self._seconds.observe(time.perf_counter() - started)
        return response

    def page(self, screen: Screen) -> str:
        all_pages = self._pages(screen)
        return all_pages[min(screen.page, len(all_pages) - 1)]

    def page_count(self, screen: Screen) -> int:
        return len(self._pages(screen))

    def _pages(self, screen: Screen) -> list[str]:
        if screen.page or screen.erase_input:  # the cache's key: the screen as every caller sees it
            screen = replace(screen, page=0, erase_input=False)
        return _paged(screen, self.limits)

    async def session_end(self, request: web.Request) -> web.Response:
        """Accept and record a gateway's end-of-session report."""
        if not self.guard.allows(request):
            self._refused["403"].inc()
            return web.Response(status=403, text="forbidden")
        assert self.dialect.session_end is not None
        try:
            report = await self.dialect.session_end(request)
        except BadRequest as exc:
            return web.Response(status=400, text=f"bad request: {exc}")
        except TooLong:  # a report, not a caller: nobody to say it to
            return web.Response(status=413, text="too large")
        row = UssdSessionEnd(
            gateway=self.dialect.name,
            session_id=report.session_id,
            msisdn=report.msisdn,
            status=report.status,
            error=report.error,
            hops=report.hops,
            duration_ms=report.duration_ms,
            cost=report.cost,
        )
        async with request.app[self.engine].core.transaction() as session:
            session.add(row)
        return web.Response(text="ok")


@lru_cache(maxsize=4096)
def _paged(screen: Screen, limits: Limits) -> list[str]:
    """Screens repeat (every caller sees the same menu): a Screen is a frozen value, so its pages
    are computed once."""
    return pages(screen, limits)


def add_routes(app: web.Application, *, settings: Settings, engine: web.AppKey[Engine]) -> None:
    """Mount every enabled gateway's routes; ``engine`` is the app's key for the shared engine."""
    for dialect in DIALECTS:
        config = settings.ussd_gateways.get(dialect.name, UssdGateway())
        if not config.enabled:
            continue
        gateway = Gateway(
            dialect=dialect,
            guard=guard_for(settings, dialect.name, config),
            limits=Limits(gsm7=config.gsm7_limit, ucs2=config.ucs2_limit),
            engine=engine,
            deadline_s=config.deadline_s or settings.hop_deadline_s,
        )
        app.router.add_post(f"/ussd/{dialect.name}", gateway.hop)
        if dialect.session_end is not None:
            app.router.add_post(f"/ussd/{dialect.name}/end", gateway.session_end)
