"""``AfricasTalkingSms``: the :class:`~core.providers.port.SmsSender` over Africa's Talking's
messaging API (``airgate sandbox`` is its sink by default). See docs/PROVIDERS.md.

Errors: the gateway unreachable or answering 5xx (or an unreadable 2xx) is
:class:`ProviderUnavailable`; a time-out or a dropped connection once the request was out is
:class:`OutcomeUnknown` (the notification outbox tries both again: at least once; a broadcast does
not: at most once); any other 4xx, a wrong ``apiKey`` included, is :class:`ProviderRejected`.
aiohttp's errors become ours in one place, :func:`_translated`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp

from core.errors import OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.providers.port import SmsReceipt

if TYPE_CHECKING:  # a type only: the settings import the adapter registry
    from core.settings import Settings

PROVIDER = "africastalking"
# 100 Processed, 101 Sent, 102 Queued: accepted; anything else (401-409, 500-501) is not.
ACCEPTED_STATUS_CODES = frozenset({100, 101, 102})
MAX_CONNECTIONS = 32  # notices are a trickle next to top-ups


class _Malformed(Exception):
    """A 2xx answer we cannot read."""


@contextmanager
def _translated() -> Iterator[None]:
    """The one place aiohttp's errors become ours. A time-out or a connection lost once the
    request was out may have sent the messages (OutcomeUnknown); the rest were not sent."""
    try:
        yield
    except (TimeoutError, aiohttp.ServerDisconnectedError) as exc:
        raise OutcomeUnknown(provider=PROVIDER, detail=type(exc).__name__) from exc
    except (aiohttp.ClientError, _Malformed) as exc:
        text = str(exc)
        detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise ProviderUnavailable(provider=PROVIDER, detail=detail) from exc


class AfricasTalkingSms:
    """Owns its ClientSession unless one is given; ``close()`` it."""

    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        api_key: str,
        sender: str = "",
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/version1/messaging"
        self._username = username
        self._api_key = api_key
        self._sender = sender
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._session = session
        self._owns_session = session is None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session: aiohttp.ClientSession | None = None
    ) -> AfricasTalkingSms:
        return cls(
            base_url=settings.sms_url,
            username=settings.sms_username,
            api_key=settings.sms_api_key.get_secret_value(),
            sender=settings.sms_sender,
            timeout_s=settings.provider_timeout_s,
            connect_timeout_s=settings.provider_connect_timeout_s,
            session=session,
        )

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def send(self, *, to: Sequence[str], message: str) -> list[SmsReceipt]:
        if not to:
            return []
        form = {"username": self._username, "to": ",".join(to), "message": message}
        if self._sender:
            form["from"] = self._sender
        headers = {"apiKey": self._api_key, "Accept": "application/json"}
        with _translated():
            async with self._http().post(
                self._url, data=form, headers=headers, timeout=self._timeout
            ) as resp:
                status, raw = resp.status, await resp.read()
            if 200 <= status < 300:
                return _receipts(raw)
        detail = f"HTTP {status}: {raw[:200].decode(errors='replace').strip()}"
        if 400 <= status < 500 and status not in (408, 429):
            raise ProviderRejected(provider=PROVIDER, detail=detail, error_code=f"HTTP_{status}")
        raise ProviderUnavailable(provider=PROVIDER, detail=detail)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
            )
            self._owns_session = True
        return self._session


def _receipts(raw: bytes) -> list[SmsReceipt]:
    try:
        body: Any = json.loads(raw)
        recipients = body["SMSMessageData"]["Recipients"]
        return [
            SmsReceipt(
                number=str(r["number"]),
                accepted=int(r["statusCode"]) in ACCEPTED_STATUS_CODES,
                message_id=(
                    str(r["messageId"]) if r.get("messageId") not in (None, "None") else None
                ),
                status=str(r["status"]),
            )
            for r in recipients
        ]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise _Malformed(f"unreadable answer: {exc!r}") from exc
