"""What every HTTP aggregator adapter says of aiohttp's errors, in the port's terms.

Invariant: an error raised where the request cannot have left (connect refused or timed out, a bad
URL) is NotSent, so routing may try another account; anything after it may have left (a read
time-out, a reset, a broken 2xx body) is OutcomeUnknown for a call that ``may_apply`` (a send),
else ProviderUnavailable (a read changes nothing: ask again).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from core.errors import NotSent, OutcomeUnknown, ProviderUnavailable

# Status codes that say "not processed, ask again later" rather than "no".
RETRY_LATER = frozenset({408, 425, 429})


def error_name(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def translated(
    provider: str, what: str, *, may_apply: bool, malformed: type[Exception]
) -> Iterator[None]:
    """The one place aiohttp's errors (and the adapter's ``malformed`` body) become ours."""
    try:
        yield
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL) as e:
        raise NotSent(provider=provider, detail=f"{what}: not sent, {error_name(e)}") from e
    except (aiohttp.ClientError, TimeoutError, malformed) as e:
        error = OutcomeUnknown if may_apply else ProviderUnavailable
        raise error(provider=provider, detail=f"{what}: {error_name(e)}") from e
