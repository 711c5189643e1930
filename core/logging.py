"""structlog set-up: key-value lines for people, JSON for machines (``AIRGATE_LOG_JSON``)."""

from __future__ import annotations

import logging

import structlog


def configure(*, level: str, json: bool) -> None:
    logging.basicConfig(level=level.upper(), format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin chatter is not news
    logging.getLogger("transitions").setLevel(logging.WARNING)  # a line per state change
    # httpx (python-telegram-bot's client) logs each request's URL at INFO, and a Bot API URL
    # carries the bot's token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # arq logs every job's arguments at INFO: a top-up's carry the customer's number, which never
    # reaches a log line. Its warnings and errors (failed jobs) still show; our own lines say what
    # each job did.
    logging.getLogger("arq").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A module's logger; bind ``topup_id``/``channel``/``session_id`` per unit of work. Never
    log a PIN, a token or a full phone number (core.msisdn.masked)."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
