"""Fuzzed gateway webhooks: whatever arrives is answered 200, 400, 403 or 413, never a 5xx or a
traceback, and the engine behind a readable request never fails.

Each property runs all its examples against one app (the ``client`` fixture is per test), so
sessions and stored rows pile up across examples as they would in production. The route answers an
engine failure with a polite END rather than a 5xx; such a failure is logged, and a logged failure
fails the property too.
"""

from __future__ import annotations

import asyncio
import io
import json
import operator
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import count
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ussd.app
from airgate.server import build_app
from core.context import Core
from core.services import parties
from core.services.audit import Actor
from core.services.seed import seed_demo
from core.settings import Settings, UssdGateway
from tests.channels.conftest import SECRET
from ussd.gateway import SECRET_HEADER, phone

# A fault run of about a minute on both databases: with the crash runs, outside `-m "not slow"`.
pytestmark = pytest.mark.slow

ALLOWED = {200, 400, 403, 413}
END_ROUTE = "africastalking/end"
FIELDS: dict[str, tuple[str, ...]] = {
    "africastalking": ("sessionId", "phoneNumber", "text", "serviceCode", "networkCode"),
    "hubtel": (
        "Type",
        "Mobile",
        "SessionId",
        "ServiceCode",
        "Message",
        "Operator",
        "Sequence",
        "ClientState",
    ),
    "arkesel": ("sessionID", "userID", "newSession", "msisdn", "userData", "network"),
    END_ROUTE: (
        "sessionId",
        "serviceCode",
        "networkCode",
        "phoneNumber",
        "status",
        "input",
        "lastAppResponse",
        "hopsCount",
        "durationInMillis",
        "cost",
        "date",
        "errorMessage",
    ),
}
JSON_ROUTES = ("hubtel", "arkesel")
HOP_ROUTES = ("africastalking", "hubtel", "arkesel")
RETAILERS = ("+254700000001", "254700000002", "+254700000003")
_sessions = count(1)


def fuzz(examples: int) -> settings:
    """Examples share the test's one app: the function-scoped fixture is meant."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# -- strategies -----------------------------------------------------------------------------------

# Any code point, lone surrogates included (they cannot be encoded: a client sends them escaped in
# JSON, or as the invalid UTF-8 that ``surrogatepass`` writes), and the characters that matter here.
chars = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.sampled_from("*#0123456789+ \x00\t\n\r\x7f\u0660\uff11\u200b"),
)
texts = st.text(chars, max_size=24)
huge = st.builds(
    operator.mul,
    st.sampled_from(["9", "*", "1*", "é", "\U0001f600", "\ud800", "\x00"]),
    st.sampled_from([93, 94, 97, 512, 513, 100_000]),
)
plausible = st.sampled_from(
    [
        "",
        "1",
        "0",
        "00",
        "98",
        "99",
        "1234",
        "500",
        "0788123456",
        "+254788123456",
        "*144#",
        "1*2",
        "**",
        "*714*5#",
        "Initiation",
        "Response",
        "Release",
        "Timeout",
        "Success",
        "Failed",
        "Incomplete",
        "2147483647",
        "2147483648",
        "99999999999",
        "-1",
        "\u0663",
        "S1",
        "S2",
        *RETAILERS,
        "233244000001",
        "+233244000001",
        "0700000001",
        "+2547",
    ]
)
# What a database or Redis cannot store, or only just: NUL, lone surrogates, 93 and 94 characters
# (with the ``at:`` prefix: 96, the session id column, and one more), a count past 32 bits.
nasty = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\ud800",
        "1\udcff",
        "s" * 93,
        "s" * 94,
        "1\n2",
        " 1 ",
        "\u202e1",
        "4294967296",
    ]
)
scalars = st.one_of(
    plausible, texts, huge, st.none(), st.booleans(), st.integers(), st.floats(), st.just(10**600)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
field_values = st.one_of(plausible, nasty, texts, huge, values)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=no-such-codec",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-16",
        "application/x-www-form-urlencoded; charset=no-such-codec",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "text/plain",
        "",
    ]
)
RAW_BODIES = st.sampled_from(
    [
        b"",
        b"\xff\xfe\x00",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"sessionID": ' + b"1" * 5_000 + b"}",
        b'{"SessionId": "\\ud800", "Mobile": "254700000001", "Type": "Initiation"}',
        b"sessionId=%ED%A0%80&phoneNumber=%2B254700000001&text=",
        b"sessionId=a&phoneNumber=%2B254700000001&status=Failed&hopsCount=99999999999",
        b'--xyz\r\nContent-Disposition: form-data; name="sessionId"\r\n\r\nS1\r\n--xyz--\r\n',
        b"--xyz\r\nContent-Disposition: form-data\r\n\r\n",
        b"--xyz\r\n" + b"x" * 200_000,
        b'--xyz\r\nContent-Disposition: form-data; name="sessionId"\r\n'
        b"Content-Transfer-Encoding: bogus\r\n\r\nS1\r\n--xyz--\r\n",
        b'--xyz\r\nContent-Disposition: form-data; name="sessionId"\r\n'
        b"Content-Encoding: bogus\r\n\r\nS1\r\n--xyz--\r\n",
        b'--xyz\r\nContent-Disposition: form-data; name="sessionId"\r\n'
        b"Content-Type: text/plain; charset=bogus\r\n\r\nS1\r\n--xyz--\r\n",
        b"null",
        b"1e999999",
    ]
)


class Request:
    """One webhook call (a plain class: its repr keeps a megabyte body short in a failure)."""

    __slots__ = ("route", "body", "content_type", "token")

    def __init__(self, route: str, body: bytes, content_type: str, token: str | None) -> None:
        self.route, self.body, self.content_type = route, body, content_type
        self.token = token  # None: no token at all

    @property
    def right_token(self) -> bool:
        return self.token == SECRET

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return (
            f"Request({self.route!r}, {body!r} ({len(self.body)} bytes), "
            f"{self.content_type!r}, token={self.token!r})"
        )


def valid_fields(route: str) -> dict[str, Any]:
    session = f"F{next(_sessions)}"
    if route == "hubtel":
        return {"Type": "Initiation", "Mobile": RETAILERS[1], "SessionId": session, "Message": ""}
    if route == "arkesel":
        return {"sessionID": session, "newSession": True, "msisdn": RETAILERS[0], "userData": ""}
    form = {"sessionId": session, "phoneNumber": RETAILERS[0], "text": ""}
    return form | ({"status": "Success"} if route == END_ROUTE else {})


def encode_form(fields: dict[str, Any]) -> bytes:
    pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()]
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode("ascii")


def encode_json(body: Any, *, ascii_only: bool) -> bytes:
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A request to any route: near a valid one (fields replaced, added, dropped), any JSON value,
    or raw bytes; with any content type; mostly with the right token."""
    route = draw(st.sampled_from([*HOP_ROUTES, END_ROUTE]))
    shape = draw(st.sampled_from(["near", "near", "near", "any", "raw"]))
    if shape == "raw":
        body, natural = draw(RAW_BODIES | st.binary(max_size=64)), ""
    else:
        if shape == "near":
            fields = valid_fields(route) if draw(st.integers(0, 3)) else {}
            fields |= draw(
                st.dictionaries(st.sampled_from(FIELDS[route]), field_values, max_size=3)
            )
            fields |= draw(st.dictionaries(texts, values, max_size=1))
            for name in draw(st.sets(st.sampled_from(FIELDS[route]), max_size=1)):
                fields.pop(name, None)
            content: Any = fields
        else:
            content = draw(values)
        as_json = route in JSON_ROUTES or not isinstance(content, dict) or draw(st.booleans())
        if as_json:
            body = encode_json(content, ascii_only=draw(st.booleans()))
            natural = "application/json"
        else:
            body, natural = encode_form(content), "application/x-www-form-urlencoded"
    content_type = natural if draw(st.integers(0, 3)) else draw(CONTENT_TYPES)
    token = draw(st.sampled_from([SECRET, SECRET, SECRET, None, "", "wrong"]))
    return Request(route, body, content_type, token)


# -- checks ---------------------------------------------------------------------------------------


@pytest.fixture
def crashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the route logged as an engine failure (it then answers a polite END, not a 5xx)."""
    seen: list[str] = []

    class Recorder:
        def exception(self, event: str, **fields: Any) -> None:
            seen.append(f"{event} {fields}\n{traceback.format_exc()}")

    monkeypatch.setattr(ussd.app, "log", Recorder())
    return seen


async def answered(response: ClientResponse, context: object) -> str:
    text = await response.text(errors="replace")
    assert response.status in ALLOWED, (response.status, text[:500], context)
    assert "Traceback" not in text and 'File "' not in text, (text[:500], context)
    if response.status == 400:
        assert text.startswith("bad request: ") and "\n" not in text, (text[:500], context)
    return text


def check_envelope(route: str, text: str) -> tuple[str, bool]:
    """The page and whether it is final, from a 200 hop reply in the route's format."""
    if route == "africastalking":
        head, _, page = text.partition(" ")
        assert head in ("CON", "END"), text
        return page, head == "END"
    reply = json.loads(text)
    if route == "hubtel":
        assert reply["Type"] in ("Response", "Release") and isinstance(reply["Message"], str)
        return reply["Message"], reply["Type"] == "Release"
    assert isinstance(reply["continueSession"], bool) and isinstance(reply["message"], str)
    return reply["message"], not reply["continueSession"]


async def send(client: TestClient, request: Request) -> tuple[int, str]:
    url = f"/ussd/{request.route}" + ("" if request.token is None else f"?token={request.token}")
    headers = {"Content-Type": request.content_type} if request.content_type else {}
    response = await client.post(url, data=io.BytesIO(request.body), headers=headers)
    text = await answered(response, request)
    if not request.right_token:
        assert response.status == 403, (text, request)
    elif response.status == 403:
        raise AssertionError(f"the right token refused: {request}")
    if response.status == 200 and request.route != END_ROUTE:
        check_envelope(request.route, text)
    return response.status, text


# -- every field, every awkward value ------------------------------------------------------------

AWKWARD: list[Any] = [
    None,
    "",
    True,
    -1,
    [],
    {"a": 1},
    10**600,
    "\x00",
    "a\x00b",
    "\ud800",
    "1\udcff",
    "1\n2",
    "\uff11\uff12\uff13",
    "\u0663",
    "s" * 93,
    "s" * 94,
    "s" * 513,
    "9" * 100_000,
    "2147483648",
    "99999999999",
    "*144#",
    "+2547",
    "233244000001",
]


async def test_every_field_of_every_route_with_every_awkward_value(
    client: TestClient, crashes: list[str]
) -> None:
    """A valid request with one field replaced: the sweep that found the 96-character column and
    the 32-bit counts, which random draws reach too rarely."""
    for route in (*HOP_ROUTES, END_ROUTE):
        for name in FIELDS[route]:
            for value in AWKWARD:
                fields = valid_fields(route) | {name: value}
                if route in JSON_ROUTES:
                    body, content_type = encode_json(fields, ascii_only=True), "application/json"
                else:
                    body, content_type = encode_form(fields), "application/x-www-form-urlencoded"
                await send(client, Request(route, body, content_type, SECRET))
    assert crashes == []


# -- properties -----------------------------------------------------------------------------------


@fuzz(160)
@given(batch=st.lists(requests(), min_size=1, max_size=4))
@example(  # what fuzzing found: each was a 500
    batch=[
        Request("hubtel", b"{}", "application/json; charset=no-such-codec", SECRET),
        Request("africastalking", b"a=1", "application/x-www-form-urlencoded; charset=x", SECRET),
        Request("arkesel", b"[" * 100_000 + b"]" * 100_000, "application/json", SECRET),
        Request(
            "africastalking",
            b"--xyz\r\n" + b"x" * 200_000,
            "multipart/form-data; boundary=xyz",
            SECRET,
        ),
    ]
)
async def test_any_request_to_any_route(
    client: TestClient, crashes: list[str], batch: list[Request]
) -> None:
    """Near-valid field sets, any JSON value or raw bytes, under any content type and token."""
    crashes.clear()
    for request in batch:
        await send(client, request)
    assert crashes == []


@dataclass
class Hop:
    """``input``; ``retry``: the gateway resends the last request; ``twice``: two copies at once;
    ``redial``: a new session on the same id; ``leave``: Hubtel's Release."""

    kind: str
    text: str


JOURNEY = ("1", "0788123456", "500")  # to the PIN screen of an airtime top-up
navigation = st.sampled_from(
    ["1", "2", "3", "4", "5", "6", "7", "0788123456", "0722000000", "500", "50", "0", "00", "98"]
    + ["1", "1", "1234", "1234", "4321", "12345"]  # the right PIN, wrong ones
)
inputs = st.one_of(
    navigation,
    navigation,
    navigation,
    plausible,
    st.text(st.sampled_from("0123456789*#"), max_size=12),
    texts,
    st.sampled_from(["1" * 512, "1" * 513, "*" * 200, "\ud800", "1\x00", "\u0661\u0662"]),
)
hops = st.builds(
    Hop, st.sampled_from(["input"] * 6 + ["retry", "twice", "redial", "leave"]), inputs
)


def readable(text: str) -> bool:
    """A field every gateway must take (the hop is then a 200): printable, at most 512 chars."""
    return len(text) <= 512 and text.isprintable()


@dataclass
class Session:
    """One handset's session on one gateway, sent hop by hop in that gateway's format."""

    route: str
    msisdn: str
    session_id: str
    path: list[str]

    def fields(self, text: str, *, new: bool) -> dict[str, Any]:
        if self.route == "africastalking":
            if new:
                self.path = []
            else:
                self.path.append(text)
            path = "*".join(self.path)
            return {"sessionId": self.session_id, "phoneNumber": self.msisdn, "text": path}
        if self.route == "hubtel":
            kind = "Initiation" if new else "Response"
            return {"Type": kind, "Mobile": self.msisdn, "SessionId": self.session_id,
                    "Message": "*714#" if new else text, "ClientState": "x"}  # fmt: skip
        return {"sessionID": self.session_id, "userID": "u", "newSession": new,
                "msisdn": self.msisdn, "userData": "*928#" if new else text}  # fmt: skip

    def request(self, fields: dict[str, Any]) -> Request:
        if self.route == "africastalking":
            form = "application/x-www-form-urlencoded"
            return Request(self.route, encode_form(fields), form, SECRET)
        return Request(self.route, encode_json(fields, ascii_only=True), "application/json", SECRET)


@fuzz(80)
@given(
    route=st.sampled_from(HOP_ROUTES),
    msisdn=st.sampled_from(RETAILERS),
    session_id=st.sampled_from(["S1", "S2", "*", "é"]) | st.text(chars, min_size=1, max_size=8),
    journey=st.integers(0, len(JOURNEY)),
    steps=st.lists(hops, min_size=1, max_size=8),
)
async def test_any_session_of_hops(
    client: TestClient,
    core: Core,
    crashes: list[str],
    route: str,
    msisdn: str,
    session_id: str,
    journey: int,
    steps: list[Hop],
) -> None:
    """Random hops on one session, often from the PIN screen of a top-up; the handset's PIN
    lockout is lifted first, so wrong PINs of earlier examples do not end every later one."""
    crashes.clear()
    await parties.unlock(core, actor=Actor.system(), ref=phone(msisdn))
    steps = [Hop("input", text) for text in JOURNEY[:journey]] + steps
    session = Session(route, msisdn, session_id, [])
    last = session.request(session.fields("", new=True))
    await send(client, last)
    for step in steps:
        if step.kind == "retry":
            await send(client, last)
            continue
        if step.kind == "leave" and route == "hubtel":
            fields = session.fields("", new=False) | {"Type": "Release"}
            status, text = await send(client, session.request(fields))
            if status == 200 or readable(session_id):
                reply = json.loads(text)
                assert (status, reply["Type"], reply["Message"]) == (200, "Release", "")
            continue
        last = session.request(session.fields(step.text, new=step.kind == "redial"))
        if step.kind == "twice":
            await asyncio.gather(send(client, last), send(client, last))
            continue
        status, _text = await send(client, last)
        sent = "*".join(session.path) if route == "africastalking" else step.text
        if readable(sent) and readable(session_id):
            assert status == 200, (step, sent)
    assert crashes == []


# -- the guard, fuzzed ----------------------------------------------------------------------------


@pytest.fixture
async def guarded(app_settings: Settings, core: Core) -> AsyncIterator[TestClient]:
    """Africa's Talking takes the token in the query, Hubtel and Arkesel in the header (Arkesel
    from loopback only)."""
    await seed_demo(core, retailers=3)
    gateways = {
        "hubtel": UssdGateway(secret_in="header"),
        "arkesel": UssdGateway(secret_in="header", allow_ips=["127.0.0.0/8"]),
    }
    settings_ = app_settings.model_copy(update={"ussd_gateways": gateways})
    async with TestClient(TestServer(build_app(settings_))) as test_client:
        yield test_client


async def raw_post(port: int, head: bytes, body: bytes) -> tuple[int, str]:
    """A request written byte by byte: header values no client library would send."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        length = f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        writer.write(head + length + body)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


@fuzz(120)
@given(
    route=st.sampled_from([*HOP_ROUTES, END_ROUTE]),
    query=st.one_of(st.none(), texts, st.binary(max_size=16), st.just(SECRET)),
    header=st.one_of(
        st.none(),
        st.binary(max_size=24).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        st.just(SECRET.encode()),
    ),
)
@example(route="hubtel", query=None, header=b"\x80")  # found by fuzzing: a 500
async def test_any_credentials(
    guarded: TestClient,
    crashes: list[str],
    route: str,
    query: str | bytes | None,
    header: bytes | None,
) -> None:
    """Any token bytes in the query or the header: 200 only for the right one in the right place."""
    crashes.clear()
    fields = valid_fields(route)
    if route in JSON_ROUTES:
        body, content_type = encode_json(fields, ascii_only=True), b"application/json"
    else:
        body, content_type = encode_form(fields), b"application/x-www-form-urlencoded"
    target = f"/ussd/{route}".encode()
    if query is not None:
        raw = query if isinstance(query, bytes) else query.encode("utf-8", "surrogatepass")
        target += b"?token=" + quote(raw).encode()
    head = b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type
    head += b"\r\n"
    if header is not None:
        head += SECRET_HEADER.encode() + b": " + header + b"\r\n"
    port = guarded.server.port
    assert port is not None
    status, text = await raw_post(port, head, body)
    context = (route, query, header, text[:300])
    assert status in ALLOWED, context
    assert "Traceback" not in text and 'File "' not in text, context
    given_ = header if route in JSON_ROUTES else query
    if status == 400:  # aiohttp's own, for bytes HTTP does not allow: the route never ran
        assert not text.startswith("bad request: "), context
    elif given_ in (SECRET, SECRET.encode()):
        assert status == 200, context
    else:
        assert status == 403, context
    assert crashes == []
