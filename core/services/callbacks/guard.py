"""Where a callback may go: the guard against making AirGate reach inside its own network (SSRF).

Invariant: a callback POST only ever connects to a public address over https, unless the settings
allow private targets (``callback_allow_private``, for development and tests) or plain http
(``callback_allow_http``). The URL is checked when it is registered and again at every send; a
host name is checked where it is resolved, at connection time (:class:`GuardedResolver`), so a
name that resolves to a public address at registration and to a private one later (DNS
rebinding) is still refused. Redirects are not followed (a 3xx is a failed attempt).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from core.errors import InputError

MAX_URL_CHARS = 2048
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


def private(address: str) -> bool:
    """Not a public unicast address: private, loopback, link-local, shared, reserved, multicast."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _bad(what: str) -> InputError:
    return InputError(reason=f"the callback URL {what}", field="url")


def check_url(url: str, *, allow_private: bool, allow_http: bool) -> str:
    """``url`` as it will be called, or InputError saying what is wrong with it."""
    text = url.strip()
    if len(text) > MAX_URL_CHARS:
        raise _bad(f"is longer than {MAX_URL_CHARS} characters")
    try:
        parsed = URL(text)
    except ValueError as exc:
        raise _bad(f"cannot be read: {exc}") from None
    if parsed.scheme not in (("https", "http") if allow_http else ("https",)):
        raise _bad("must start with https://")
    if not parsed.host:
        raise _bad("has no host")
    if parsed.user is not None or parsed.password is not None:
        raise _bad("must not carry a user name or password")
    if parsed.fragment:
        raise _bad("must not have a #fragment")
    if not allow_private and _refused_host(parsed.host):
        raise _bad("points to a private, loopback or link-local address")
    return str(parsed)


def host_of(url: str) -> str:
    """The host alone (for the audit log: a URL's path or query may carry a receiver's token)."""
    return URL(url).host or ""


def _refused_host(host: str) -> bool:
    literal = _ip(host)
    if literal is not None:
        return private(literal)
    return host.lower().rstrip(".") in _LOCAL_NAMES or host.lower().endswith(".localhost")


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only public addresses (raising OSError when none is left)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return found
        public = [entry for entry in found if not private(entry["host"])]
        if not public:
            # errno and text: aiohttp's ClientConnectorError shows the text (strerror)
            raise OSError(errno.EACCES, f"{host}: private, loopback or link-local address only")
        return public

    async def close(self) -> None:
        await self._inner.close()


def connector_options(*, allow_private: bool) -> dict[str, Any]:
    return {"resolver": GuardedResolver(allow_private=allow_private), "use_dns_cache": False}
