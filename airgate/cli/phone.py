"""``airgate phone NUMBER``: a phone in the terminal that dials the local USSD gateway the way
Africa's Talking's simulator does, for demos and docs.

Each dial is a new ``sessionId``; every hop POSTs Africa's Talking's form to
``/ussd/africastalking?token=…`` with ``text`` = the session's inputs so far joined by ``*``. A
``CON`` screen asks for the next input, an ``END`` screen closes the session. Replies are read a
line at a time, so a script can pipe them in: ``printf '1\\n0788123456\\n' | airgate phone …``.
"""

from __future__ import annotations

import asyncio
import http.client
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.text import Text

from airgate.cli._run import fail, out, settings
from core.errors import InvalidMsisdn
from core.logging import write_to
from core.msisdn import normalize
from core.settings import Settings, UssdGateway
from ussd.gateway import SECRET_HEADER, SECRET_QUERY, shared_secret

GATEWAY = "africastalking"
DEFAULT_CODE = "*384*123#"
NETWORK_CODE = "99999"  # what Africa's Talking's sandbox simulator sends
TIMEOUT_S = 30.0
SCREEN_WIDTH = 44  # about a phone's screen: long lines wrap as they would there
ON_CON = "reply, or Enter to hang up"
ON_END = "Enter to dial again, q to quit"
# A local gateway: never through an HTTP(S)_PROXY from the environment (aiohttp's client agrees).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LineDown(Exception):
    """The call cannot go on (no server, a refused token…): one line says why."""


@dataclass(frozen=True, slots=True)
class Line:
    """The gateway as the phone network sees it."""

    url: str
    token: str
    number: str
    code: str

    def hop(self, session_id: str, text: str) -> tuple[str, bool]:
        """The screen for the session's inputs so far, and whether it ends the session."""
        form = {
            "sessionId": session_id,
            "phoneNumber": self.number,
            "serviceCode": self.code,
            "networkCode": NETWORK_CODE,
            "text": text,
        }
        query = urllib.parse.urlencode({SECRET_QUERY: self.token})
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}/ussd/{GATEWAY}?{query}",
            data=urllib.parse.urlencode(form).encode(),
            headers={SECRET_HEADER: self.token},  # for a gateway configured to read the header
        )
        try:
            with _OPENER.open(request, timeout=TIMEOUT_S) as response:
                body: str = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:  # before URLError: it is one
            raise LineDown(self._refused(exc.code, exc.read().decode("utf-8", "replace"))) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise LineDown(f"{self.url} did not answer within {TIMEOUT_S:.0f} s") from None
            raise LineDown(
                f"nothing answers at {self.url}: start `airgate serve` or `airgate demo` first"
            ) from None
        except http.client.HTTPException:
            body = ""
        kind, _, screen = body.partition(" ")
        if kind not in ("CON", "END"):
            raise LineDown(f"{self.url} did not answer as a USSD gateway: {body[:60]!r}")
        return screen, kind == "END"

    def _refused(self, status: int, body: str) -> str:
        if status == 403:
            return (
                f"{self.url} refused the token (403): give --token, or run with the server's "
                "AIRGATE_VAR_DIR (its ussd_secret) or AIRGATE_USSD_SECRET"
            )
        if status == 404:
            return f"{self.url} has no /ussd/{GATEWAY} route: is it AirGate, with that gateway on?"
        first = body.strip().splitlines()[0][:80] if body.strip() else ""
        return f"{self.url} answered {status}{f': {first}' if first else ''}"


def line_for(s: Settings, number: str, *, url: str = "", code: str = "", token: str = "") -> Line:
    """The line to the gateway these settings serve; a number that is not one fails here."""
    try:
        msisdn = normalize(number, country=s.country)
    except InvalidMsisdn as exc:
        fail(str(exc))
    if not url:
        host = "127.0.0.1" if s.http_host in ("", "0.0.0.0", "::") else s.http_host
        url = f"http://{f'[{host}]' if ':' in host else host}:{s.http_port}"
    if not token:
        own = s.ussd_gateways.get(GATEWAY, UssdGateway()).secret.get_secret_value()
        token = own or shared_secret(s)
    return Line(url=url, token=token, number=msisdn, code=code or DEFAULT_CODE)


def _show(screen: str, *, final: bool) -> None:
    out.print(
        Panel(
            Text(screen),
            subtitle=Text(ON_END if final else ON_CON),
            subtitle_align="right",
            width=min(out.width, SCREEN_WIDTH),
        )
    )


def _ask(prompt: str = "> ") -> str | None:
    """A line typed (or piped) in, stripped; None at the end of input."""
    try:
        reply = out.input(prompt)
    except EOFError:
        out.print()
        return None
    if not sys.stdin.isatty():
        out.print(reply, markup=False)  # piped: show what was "typed", so the transcript reads
    return reply.strip()


def _call(line: Line) -> bool:
    """One dial, until an END screen or a hang-up; False when the input ended."""
    session_id = f"ATUid_{secrets.token_hex(16)}"
    inputs: list[str] = []
    while True:
        screen, final = line.hop(session_id, "*".join(inputs))
        if not inputs:  # said once the gateway answers: a failed dial is one line, on stderr
            out.print(f"{line.number} dials {line.code}", markup=False)
        _show(screen, final=final)
        if final:
            return True
        reply = _ask()
        if reply is None:
            return False
        if not reply:
            out.print("hung up: Enter to dial again (within 2 minutes: carry on), q to quit")
            return True
        inputs.append(reply)


def talk(line: Line) -> None:
    """Dial, and again while asked. Ctrl-C and the end of input quit; LineDown says why not."""
    try:
        while True:
            if not _call(line):
                return
            again = _ask()
            if again is None or again.lower() == "q":
                return
    except KeyboardInterrupt:
        out.print()


def ring(line: Line) -> asyncio.Future[None]:
    """``talk(line)`` in a thread beside this event loop (which serves the gateway); the future
    is done when the phone quits. A daemon thread: a Ctrl-C that stops the loop does not wait for
    a line of input."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: Exception | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: Exception | None = None
        try:
            talk(line)
        except Exception as exc:
            error = exc
        with suppress(RuntimeError):  # the loop has closed: the demo stopped first
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="phone", daemon=True).start()
    return done


def logs_to(path: Path) -> None:
    """Send every log line to ``path`` (appended) instead of the terminal the phone uses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to(path.open("a", encoding="utf-8"))  # open until the process ends


def phone(
    number: Annotated[str, typer.Argument(help="The caller, e.g. +254700000001 (PIN 1234).")],
    url: Annotated[
        str, typer.Option(help="Default: http://{AIRGATE_HTTP_HOST}:{AIRGATE_HTTP_PORT}.")
    ] = "",
    code: Annotated[str, typer.Option(help="The service code dialled.")] = DEFAULT_CODE,
    token: Annotated[
        str,
        typer.Option(
            help="The gateway's secret. Default: AIRGATE_USSD_SECRET or var_dir/ussd_secret."
        ),
    ] = "",
) -> None:
    """Dial the USSD menu from the terminal as Africa's Talking's simulator does: each screen in
    a box, a reply per line (stdin may be piped). Needs `airgate serve` or `airgate demo`."""
    try:
        talk(line_for(settings(), number, url=url, code=code, token=token))
    except LineDown as exc:
        fail(str(exc))
