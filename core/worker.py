"""``airgate worker``: arq functions and the worker's start-up.

It composes what jobs run (services, provider adapters) and so sits above ``core/services``;
``core/jobs/`` is how work is put on the queue, which services use, and how a worker takes it off
(core/jobs/runner.py): no cycle between them.

Invariant: a job only ever advances a top-up by one step (core/services/delivery.py) and is safe to
run twice; arq re-runs a job whose worker died (after ``job timeout + 10 s``), and the sweeper
(a cron job here, unique across workers) re-enqueues whatever has no job at all. A delivery runs
"fresh" (sends without asking the aggregator first) only on its job id's first claim.

The worker rides out its queue's Redis going away (a restart, a Sentinel failover): a poll that
fails is logged and tried again; a job whose end could not be written is re-run after its
in-progress mark lapses (and, being a re-run, asks before it sends).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import wraps
from typing import Any, TypeVar

from arq import Retry, cron
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Worker

from core.context import open_core
from core.errors import StoreUnavailable
from core.jobs.queue import QUEUE, JobQueue
from core.jobs.runner import QueueWorker
from core.logging import get_logger
from core.providers.sms import AfricasTalkingSms
from core.providers.telegram import TelegramSender
from core.ratelimit import Limiter
from core.redis import Client, Timeouts
from core.redis import client as redis_client
from core.routing.health import Health
from core.routing.router import Router
from core.services import floats
from core.services.broadcast import Sender
from core.services.callbacks.sender import CallbackSender, attempt
from core.services.daily.morning import Morning
from core.services.delivery import Delivery, advance
from core.services.finish import Finisher
from core.services.notify import Notifier
from core.services.recon_job import BackOffice
from core.services.sweeper import sweep
from core.settings import Settings
from core.stores import database_down

log = get_logger(__name__)


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    stack = AsyncExitStack()
    # No first hop to serve: none of the lookups' own connections (docs/OPERATIONS.md, budget).
    core = await stack.enter_async_context(
        open_core(settings.model_copy(update={"db_lookup_connections": 0}))
    )
    # What serve reads too (breakers, floats, the bot's rate) is on the main Redis, which is the
    # queue's unless the queue has its own (AIRGATE_QUEUE_REDIS_URL).
    shared = ctx["redis"]
    if settings.queue_redis_url:
        shared = redis_client(ctx["redis_url"], Timeouts.of(settings))
        stack.push_async_callback(shared.aclose)
    ctx["shared"] = shared
    router = Router.from_settings(settings, health=Health.from_settings(settings, shared))
    stack.push_async_callback(router.close)
    sms = AfricasTalkingSms.from_settings(settings)
    stack.push_async_callback(sms.close)
    telegram = _telegram(settings, shared)
    if telegram is not None:
        stack.push_async_callback(telegram.close)
    notifier = Notifier(core=core, sms=sms, telegram=telegram)
    notifier.start()
    stack.push_async_callback(notifier.close)
    ctx["stack"] = stack
    queue = JobQueue(ctx["redis"])
    ctx["delivery"] = Delivery(
        core=core,
        router=router,
        notifier=notifier,
        queue=queue,
        finisher=Finisher(core, queue=queue),
    )
    ctx["callbacks"] = CallbackSender.build(core, queue)
    stack.push_async_callback(ctx["callbacks"].close)
    ctx["broadcasts"] = Sender(core=core, redis=ctx["redis"], sms=sms, telegram=telegram)
    ctx["back_office"] = BackOffice(core=core, redis=ctx["redis"], outbox=notifier.send)
    stack.push_async_callback(ctx["back_office"].close)
    ctx["reports"] = Morning(core=core, sms=sms, telegram=telegram)
    log.info(
        "worker.ready",
        accounts=",".join(router.accounts),
        telegram=telegram is not None,
        max_jobs=settings.worker_max_jobs,
    )


def _telegram(settings: Settings, shared: Client) -> TelegramSender | None:
    """What sends the bot's messages, paced across every process by the shared Redis; None
    without a token."""
    token = settings.telegram_token.get_secret_value()
    if not token:
        return None
    limiter = Limiter(
        shared,
        bot=token.partition(":")[0],  # the bot's id, not its secret
        rate=settings.telegram_rate_per_s,
        chat_interval_s=settings.telegram_chat_interval_s,
    )
    return TelegramSender(api_url=settings.telegram_api_url, token=token, limiter=limiter)


async def _shutdown(ctx: dict[str, Any]) -> None:
    if "stack" in ctx:
        await ctx["stack"].aclose()


R = TypeVar("R")
STORE_RETRY_MAX_S = 16  # 2, 4, 8, 16 s: past arq's max_tries (5), the sweeper takes over


def again_when_stores_away(job: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """``job``, run again soon (arq's Retry, 2 s doubling) when it found a store away (a
    StoreUnavailable, or a driver's "not there" that reached it unwrapped, core/stores.py; an
    unwrapped OSError is named the database's), logged as one line: an outage is no bug to print
    a traceback for, and waiting for the sweeper would hold every top-up caught in it for
    AIRGATE_SWEEPER_STALE_S more. Safe: a job only advances its top-up by one step and may run
    twice (the module's invariant); a retried delivery is not "fresh", so it asks the aggregator
    before it sends."""

    @wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> R:
        try:
            return await job(ctx, *args, **kwargs)
        except Exception as exc:
            away = exc if isinstance(exc, StoreUnavailable) else database_down(exc)
            if away is None:
                raise
            defer_s = min(2 ** ctx["job_try"], STORE_RETRY_MAX_S)
            log.warning(
                "worker.store_unavailable", job=job.__name__, store=away.fields["store"],
                error=away.fields["detail"], tried=ctx["job_try"], again_in_s=defer_s,
            )  # fmt: skip
            raise Retry(defer=defer_s) from None

    return run


def skipped_when_stores_away(task: Callable[..., Awaitable[Any]]) -> WorkerCoroutine:
    """A cron ``task`` that found a store away is skipped with one warning line (its next run
    comes within its interval and does the same work) instead of a traceback."""

    @wraps(task)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await task(ctx, *args, **kwargs)
        except Exception as exc:
            away = exc if isinstance(exc, StoreUnavailable) else database_down(exc)
            if away is None:
                raise
            log.warning(
                "worker.cron_skipped", task=task.__name__, store=away.fields["store"],
                error=away.fields["detail"],
            )  # fmt: skip
            return None

    return run


# The function names are the job names core.jobs.queue enqueues (DELIVER, NOTIFY, BROADCAST,
# CALLBACK).
async def deliver(
    ctx: dict[str, Any],
    topup_id: str,
    sends: int,
    checks: int,
    fresh: bool,
    snapshot: tuple[Any, ...] | None = None,
) -> str:
    # A retried job (its worker died mid-step, its Redis failed over) may have sent already:
    # never "fresh". arq's try count is written after the claim and may be lost in a failover;
    # the claim count is in the claim itself (core/jobs/scripts.py).
    fresh = fresh and ctx["job_try"] == 1 and ctx["claims"].get(ctx["job_id"], 1) == 1
    return await advance(
        ctx["delivery"], topup_id, sends=sends, checks=checks, fresh=fresh, snapshot=snapshot
    )


async def notify(ctx: dict[str, Any], ids: list[int]) -> int:
    delivery: Delivery = ctx["delivery"]
    return await delivery.notifier.send_ids(ids)


async def broadcast(ctx: dict[str, Any], broadcast_id: int, part: int) -> bool:
    """Send a part of a broadcast (a job's time-out's worth), then enqueue the next part."""
    sender: Sender = ctx["broadcasts"]
    done = await sender.run(broadcast_id, budget_s=broadcast_budget_s(ctx["settings"]))
    if not done:
        await ctx["delivery"].queue.broadcast(broadcast_id, part=part + 1)
    return done


async def callback(ctx: dict[str, Any], delivery_id: int, attempts: int) -> str:
    """One POST of an outcome callback (core/services/callbacks/sender.py)."""
    return await attempt(ctx["callbacks"], delivery_id, attempts)


async def sweeper(ctx: dict[str, Any]) -> None:
    delivery: Delivery = ctx["delivery"]
    report = await sweep(delivery.core, delivery.queue)
    if report.topups_resumed or report.notifications_resumed or report.broadcasts_resumed:
        log.warning(
            "sweeper.resumed",
            topups=report.topups_resumed,
            notifications=report.notifications_resumed,
            broadcasts=report.broadcasts_resumed,
        )
    if report.callbacks_resumed:  # overdue retries land here too: not a warning
        log.info("sweeper.callbacks", resumed=report.callbacks_resumed)


EVERY_5_MIN = set(range(0, 60, 5))


async def back_office(ctx: dict[str, Any]) -> None:
    """Overdue cases to the platform; after AIRGATE_RECONCILE_HOUR, yesterday's reconciliation
    (a task of its own under a lease in Redis: core/services/recon_job.py)."""
    await ctx["back_office"].tick()


async def morning_reports(ctx: dict[str, Any]) -> int:
    """Yesterday's report to each distributor, once per party and day (core/services/daily)."""
    reports: Morning = ctx["reports"]
    return await reports.send_due(budget_s=max(5.0, job_timeout_s(ctx["settings"]) - 10))


async def float_poll(ctx: dict[str, Any]) -> None:
    """Every account's balance, kept for status and /metrics; a low one alerts the platform."""
    delivery: Delivery = ctx["delivery"]
    accounts = list(delivery.router.accounts.values())
    await floats.poll(
        delivery.core, redis=ctx["shared"], accounts=accounts, outbox=delivery.notifier.send
    )


def _every(interval_s: int) -> tuple[set[int] | None, set[int]]:
    """An arq cron's (minute, second) for "every ``interval_s``": seconds of every minute under
    60, else whole minutes of the hour, at second 0."""
    if interval_s < 60:
        return None, set(range(0, 60, interval_s))
    return set(range(0, 60, max(1, interval_s // 60))), {0}


def job_timeout_s(settings: Settings) -> float:
    """One step is at most a status query and a send, each bounded by the provider time-out; a
    callback is one POST (a job cut short would never record its attempt, so never give up)."""
    step_s = 2 * (settings.provider_timeout_s + settings.provider_connect_timeout_s)
    return max(step_s, settings.callback_timeout_s) + 5


def broadcast_budget_s(settings: Settings) -> float:
    """A broadcast job sends for this long, well inside the job time-out, then hands over."""
    return max(5.0, job_timeout_s(settings) - 10)


def build_worker(
    settings: Settings, *, redis_url: str, burst: bool = False, handle_signals: bool = True
) -> Worker:
    """The worker ``airgate worker`` runs: the queue on AIRGATE_QUEUE_REDIS_URL if set, else on
    ``redis_url`` (the main Redis, which the worker also uses for what serve reads)."""
    interval = min(settings.sweeper_interval_s, 60)
    # One time-out for every function: arq waits (the longest time-out + 10 s) before it re-runs a
    # job whose worker died, so a long sweeper time-out would slow every crash recovery.
    timeout_s = job_timeout_s(settings)
    minutes, seconds = _every(settings.float_poll_interval_s)

    def periodic(task: Callable[..., Awaitable[Any]], **when: Any) -> CronJob:
        """A periodic task: one run at a time across workers, skipped while a store is away."""
        return cron(skipped_when_stores_away(task), unique=True, timeout=timeout_s, **when)

    return QueueWorker(
        functions=[
            again_when_stores_away(deliver),
            again_when_stores_away(notify),
            broadcast,
            callback,
        ],
        cron_jobs=[
            periodic(sweeper, second=set(range(0, 60, interval)), run_at_startup=True),
            periodic(back_office, minute=EVERY_5_MIN, second=7),
            # Every minute (a quick query once all are sent): a late start still sends today's.
            periodic(morning_reports, second=30, run_at_startup=True),
            periodic(float_poll, minute=minutes, second=seconds, run_at_startup=True),
        ],
        queue_name=QUEUE,
        queue_url=settings.queue_redis_url or redis_url,
        timeouts=Timeouts.of(settings),
        wait_replicas=settings.queue_wait_replicas,
        wait_ms=settings.queue_redis_wait_ms,
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings, "redis_url": redis_url},
        max_jobs=settings.worker_max_jobs,
        job_timeout=timeout_s,
        keep_result=0,  # a finished job id may be enqueued again (the sweeper's copies)
        poll_delay=0.05,
        burst=burst,
        handle_signals=handle_signals,
        log_results=False,
    )


async def run_worker(worker: Worker) -> None:
    """Run until stopped (SIGTERM/SIGINT, or ``worker.handle_sig`` in a test), then close.

    arq cancels its running jobs on a signal (they are re-run later: every step is safe to run
    twice); they are awaited here before ``close``, which would otherwise re-raise their
    cancellation instead of closing the Redis pool.
    """
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        log.info("worker.stopping")
    finally:
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        worker.tasks.clear()
        await worker.close()
