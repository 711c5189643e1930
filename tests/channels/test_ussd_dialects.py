"""Every USSD gateway over HTTP: one journey in the same words, one guard, 400 when unreadable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientResponse, FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from airgate.server import build_app
from core.context import Core
from core.models import UssdSessionEnd
from core.services.seed import seed_demo
from core.settings import Settings, UssdGateway
from tests.channels.conftest import SECRET
from ussd.gateway import SECRET_HEADER

DIALECTS = ("africastalking", "hubtel", "arkesel")
RETAILER = "+254700000001"
_sessions = count(1)

Serve = Callable[..., AbstractAsyncContextManager[TestClient]]


@dataclass
class Handset:
    """A handset behind one gateway: each hop is that gateway's request; each answer is read back
    as (page, final), whatever the envelope."""

    client: TestClient
    dialect: str
    msisdn: str = RETAILER
    session_id: str = field(default_factory=lambda: f"S{next(_sessions):06d}")
    inputs: list[str] = field(default_factory=list)
    client_state: str = field(default_factory=lambda: f"cs-{next(_sessions)}")
    last: dict[str, Any] = field(default_factory=dict)  # the last JSON reply, envelope and all

    async def dial(self) -> tuple[str, bool]:
        self.inputs = []
        return await self._hop(self.post(self.body(new=True)))

    async def send(self, text: str) -> tuple[str, bool]:
        self.inputs.append(text)
        return await self._hop(self.post(self.body(new=False)))

    def body(self, *, new: bool) -> dict[str, Any]:
        """The gateway's request for this hop (Hubtel and Arkesel send the number without ``+``)."""
        text = "" if new else self.inputs[-1]
        if self.dialect == "africastalking":
            path = "*".join(self.inputs)
            return {"sessionId": self.session_id, "phoneNumber": self.msisdn, "text": path}
        if self.dialect == "hubtel":
            return {
                "Type": "Initiation" if new else "Response",
                "Mobile": self.msisdn.lstrip("+"),
                "SessionId": self.session_id,
                "ServiceCode": "714",
                "Message": "*714*5#" if new else text,
                "Operator": "safaricom",
                "Sequence": len(self.inputs) + 1,
                "ClientState": self.client_state,
            }
        return {
            "sessionID": self.session_id,
            "userID": "airgate-test",
            "newSession": new,
            "msisdn": self.msisdn.lstrip("+"),
            "userData": "*928*5#" if new else text,
            "network": "Safaricom",
        }

    def post(
        self, body: Any, *, token: str | None = SECRET, headers: dict[str, str] | None = None
    ) -> Any:
        url = f"/ussd/{self.dialect}" + ("" if token is None else f"?token={token}")
        if self.dialect == "africastalking":
            return self.client.post(url, data=body, headers=headers)
        return self.client.post(url, json=body, headers=headers)

    async def _hop(self, pending: Any) -> tuple[str, bool]:
        response: ClientResponse = await pending
        assert response.status == 200, await response.text()
        if self.dialect == "africastalking":
            head, _, page = (await response.text()).partition(" ")
            assert head in ("CON", "END")
            return page, head == "END"
        self.last = await response.json()
        if self.dialect == "hubtel":
            assert self.last["Type"] in ("Response", "Release")
            return self.last["Message"], self.last["Type"] == "Release"
        return self.last["message"], not self.last["continueSession"]


@pytest.fixture
async def serve(app_settings: Settings, core: Core) -> Serve:
    """Serve the app with these gateways' settings (``hubtel=UssdGateway()``) on a seeded chain."""
    await seed_demo(core, retailers=3)

    @asynccontextmanager
    async def serving(**gateways: UssdGateway) -> AsyncIterator[TestClient]:
        settings = app_settings.model_copy(update={"ussd_gateways": gateways})
        async with TestClient(TestServer(build_app(settings))) as test_client:
            yield test_client

    return serving


@pytest.fixture
async def redis(app_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(app_settings.redis_url)
    yield client
    await client.aclose()


async def stored_sessions(redis: aioredis.Redis) -> list[bytes]:
    keys: list[bytes] = await redis.keys("airgate:s:*")
    return keys


# -- the journey ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_cancelled_journey_reads_the_same_on_every_gateway(
    client: TestClient, dialect: str
) -> None:
    handset = Handset(client, dialect)
    menu, final = await handset.dial()
    assert menu.startswith("AirGate\n1. Airtime top-up\n2. Data bundle") and not final
    assert "7. My account" in menu
    assert await handset.send("1") == ("Enter the customer's phone number:\n0 Back 00 Menu", False)
    amount = await handset.send("0788123456")
    assert amount == ("Airtel 0788123456\nAmount (KES 5 to KES 10,000):\n0 Back 00 Menu", False)
    confirm = await handset.send("500")
    assert confirm == (
        "Top up KES 500 to 0788123456 (Airtel)?\nEnter PIN to confirm or 0 to cancel",
        False,
    )
    assert await handset.send("0") == ("Cancelled. Nothing was done.", True)


async def test_hubtel_gets_its_client_state_back_and_release_when_final(client: TestClient) -> None:
    handset = Handset(client, "hubtel")
    await handset.dial()
    assert handset.last["Type"] == "Response"
    assert handset.last["ClientState"] == handset.client_state
    await handset.send("1")
    await handset.send("00")
    await handset.send("1")
    await handset.send("0788123456")
    await handset.send("500")
    await handset.send("0")
    assert handset.last == {
        "Type": "Release",
        "Message": "Cancelled. Nothing was done.",
        "ClientState": handset.client_state,
        "Label": "Cancelled. Nothing was done.",
        "DataType": "display",
        "FieldType": "text",
    }


async def test_a_hubtel_hop_retried_with_its_sequence_is_not_applied_twice(
    client: TestClient,
) -> None:
    """Hubtel sends only the last input: without its ``Sequence`` a retried "1" would be taken as
    the answer to the next screen."""
    handset = Handset(client, "hubtel")
    await handset.dial()
    assert await handset.send("1") == ("Enter the customer's phone number:\n0 Back 00 Menu", False)
    retry = await handset._hop(handset.post(handset.body(new=False)))  # the same hop again
    assert retry == ("Enter the customer's phone number:\n0 Back 00 Menu", False)
    amount = await handset.send("0788123456")
    assert amount == ("Airtel 0788123456\nAmount (KES 5 to KES 10,000):\n0 Back 00 Menu", False)
    assert (await handset._hop(handset.post(handset.body(new=False))))[0] == amount[0]
    await handset.send("500")
    assert await handset.send("0") == ("Cancelled. Nothing was done.", True)
    assert await handset._hop(handset.post(handset.body(new=False))) == (
        "Cancelled. Nothing was done.",
        True,
    )


async def test_hubtel_release_is_answered_without_the_engine(
    client: TestClient, redis: aioredis.Redis
) -> None:
    handset = Handset(client, "hubtel")
    await handset.dial()
    await handset.send("1")
    (key,) = await stored_sessions(redis)
    before = await redis.get(key)
    for kind in ("Release", "Timeout"):
        response = await handset.post(handset.body(new=False) | {"Type": kind, "Message": ""})
        assert response.status == 200
        assert await response.json() == HANGUP
        assert await redis.get(key) == before  # the engine never saw it
        stranger = Handset(client, "hubtel")
        response = await stranger.post(stranger.body(new=True) | {"Type": kind})
        assert await response.json() == HANGUP
    assert await stored_sessions(redis) == [key]
    assert await handset.send("0788123456") == (
        "Airtel 0788123456\nAmount (KES 5 to KES 10,000):\n0 Back 00 Menu",
        False,
    )


HANGUP = {"Type": "Release", "Message": "", "Label": "", "DataType": "display", "FieldType": "text"}
FIXTURES = Path(__file__).parent.parent / "fixtures" / "hubtel"


def hubtel_sample(name: str) -> bytes:
    """One of Hubtel's published samples, byte for byte (tests/fixtures/hubtel/README.md)."""
    return (FIXTURES / name).read_bytes()


async def _post_raw(client: TestClient, body: bytes) -> dict[str, Any]:
    response = await client.post(f"/ussd/hubtel?token={SECRET}", data=body, headers=JSON_TYPE)
    assert response.status == 200, await response.text()
    reply: dict[str, Any] = await response.json()
    return reply


async def test_hubtels_published_sample_is_answered_as_hubtel_reads_it(client: TestClient) -> None:
    """The docs' sample: ``"Type":"initiation"`` in lower case, ``"Sequence":"1"`` as a string, a
    caller AirGate does not know (answered on one display screen, with the fields Hubtel's app
    renders)."""
    reply = await _post_raw(client, hubtel_sample("initiation_app.json"))
    assert reply["Type"] == "Release" and reply["ClientState"] == ""
    assert reply["DataType"] == "display" and reply["FieldType"] == "text"
    assert reply["Message"] and reply["Label"] == reply["Message"].split("\n")[0]


def _as_retailer(sample: bytes, session_id: str, **fields: Any) -> bytes:
    """The sample with a known retailer's number, this session, and ``fields`` changed (the
    sample's own spelling of every other field kept)."""
    body = json.loads(sample) | {"Mobile": RETAILER.lstrip("+"), "SessionId": session_id}
    return json.dumps(body | fields).encode()


async def test_a_journey_in_the_samples_spelling_reads_its_screens_and_retries(
    client: TestClient,
) -> None:
    """Lower-case types and string sequences throughout: each screen's ``DataType``/``FieldType``
    says what it waits for, and a retried hop (same string ``Sequence``) is not applied twice."""
    sample = hubtel_sample("initiation_app.json")
    hop = partial(_as_retailer, sample, f"HS{next(_sessions)}")
    menu = await _post_raw(client, hop())
    assert menu["Type"] == "Response" and menu["Message"].startswith("AirGate\n1. Airtime")
    assert (menu["Label"], menu["DataType"], menu["FieldType"]) == ("AirGate", "menu", "text")
    ask = {"Type": "response", "Sequence": "2", "Message": "1"}
    number = await _post_raw(client, hop(**ask))
    assert (number["DataType"], number["FieldType"]) == ("input", "phone")
    assert await _post_raw(client, hop(**ask)) == number  # the retry: the same screen
    amount = await _post_raw(client, hop(Type="response", Sequence="3", Message="0788123456"))
    assert (amount["DataType"], amount["FieldType"]) == ("input", "number")
    pin = await _post_raw(client, hop(Type="RESPONSE", Sequence="4", Message="500"))
    assert (pin["DataType"], pin["FieldType"]) == ("input", "number")
    done = await _post_raw(client, hop(Type="response", Sequence="5", Message="0"))
    assert done["Message"] == "Cancelled. Nothing was done." and done["DataType"] == "display"


async def test_hubtel_field_names_are_read_whatever_their_case(client: TestClient) -> None:
    """Json.NET, which Hubtel's SDK binds with, matches property names case-insensitively."""
    body = {key.lower(): value for key, value in HUBTEL.items()} | {"type": "initiation"}
    reply = await _post_raw(client, json.dumps(body).encode())
    assert reply["Type"] == "Response" and reply["Message"].startswith("AirGate")


@pytest.mark.parametrize("kind", ["query", "Favorite", "FAVORITE"])
async def test_hubtel_query_and_favorite_start_a_session(client: TestClient, kind: str) -> None:
    """Hubtel's SDK treats both as a kind of initiation (a favourite may skip steps AirGate does
    not skip: the session starts at the menu)."""
    reply = await _post_raw(client, json.dumps(HUBTEL | {"Type": kind}).encode())
    assert reply["Type"] == "Response" and reply["Message"].startswith("AirGate\n1.")


async def test_hubtel_add_to_cart_is_politely_released(
    client: TestClient, redis: aioredis.Redis
) -> None:
    """AirGate sells nothing through Hubtel's checkout: the caller is told so, nothing is stored."""
    for kind in ("AddToCart", "addtocart"):
        reply = await _post_raw(client, json.dumps(HUBTEL | {"Type": kind}).encode())
        assert reply["Type"] == "Release" and reply["DataType"] == "display"
        assert "not available" in reply["Message"]
    assert await stored_sessions(redis) == []


async def test_arkesel_gets_its_ids_back_and_continue_false_when_final(client: TestClient) -> None:
    handset = Handset(client, "arkesel")
    await handset.dial()
    echo = {"sessionID": handset.session_id, "userID": "airgate-test", "msisdn": "254700000001"}
    assert handset.last == echo | {"message": handset.last["message"], "continueSession": True}
    for text in ("1", "0788123456", "500", "0"):
        await handset.send(text)
    assert handset.last == echo | {
        "message": "Cancelled. Nothing was done.",
        "continueSession": False,
    }


# -- the guard ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_without_the_token_nothing_is_read_or_stored(
    client: TestClient, redis: aioredis.Redis, dialect: str
) -> None:
    handset = Handset(client, dialect)
    for token in (None, "", "wrong", SECRET + "x", SECRET[:-1], SECRET.upper()):
        response = await handset.post(handset.body(new=True), token=token)
        assert (response.status, await response.text()) == (403, "forbidden"), token
    assert await stored_sessions(redis) == []


async def test_a_gateway_configured_for_the_header_takes_the_token_there_only(
    serve: Serve, redis: aioredis.Redis
) -> None:
    async with serve(**{name: UssdGateway(secret_in="header") for name in DIALECTS}) as client:
        for dialect in DIALECTS:
            handset = Handset(client, dialect)
            in_query = await handset.post(handset.body(new=True))
            assert in_query.status == 403, dialect
            wrong = handset.post(handset.body(new=True), token=None, headers={SECRET_HEADER: "x"})
            assert (await wrong).status == 403, dialect
        assert await stored_sessions(redis) == []
        for dialect in DIALECTS:
            handset = Handset(client, dialect)
            header = {SECRET_HEADER: SECRET}
            right = handset.post(handset.body(new=True), token=None, headers=header)
            menu, final = await handset._hop(right)
            assert menu.startswith("AirGate\n1. Airtime top-up") and not final


async def test_a_gateway_with_its_own_secret_refuses_the_shared_one(serve: Serve) -> None:
    own = {name: UssdGateway(secret=f"{name}-own-secret") for name in DIALECTS}
    async with serve(**own) as client:
        for dialect in DIALECTS:
            handset = Handset(client, dialect)
            assert (await handset.post(handset.body(new=True))).status == 403, dialect
            mine = handset.post(handset.body(new=True), token=f"{dialect}-own-secret")
            assert (await handset._hop(mine))[0].startswith("AirGate")


async def test_outside_the_allowed_networks_even_the_right_token_is_refused(
    serve: Serve, redis: aioredis.Redis
) -> None:
    elsewhere = UssdGateway(allow_ips=["10.0.0.0/8", "192.0.2.7", "::1"])
    async with serve(**dict.fromkeys(DIALECTS, elsewhere)) as client:
        for dialect in DIALECTS:
            handset = Handset(client, dialect)
            response = await handset.post(handset.body(new=True))
            assert (response.status, await response.text()) == (403, "forbidden"), dialect
        assert await stored_sessions(redis) == []
    loopback = UssdGateway(allow_ips=["127.0.0.0/8"])
    async with serve(**dict.fromkeys(DIALECTS, loopback)) as client:
        for dialect in DIALECTS:
            menu, final = await Handset(client, dialect).dial()
            assert menu.startswith("AirGate\n1. Airtime top-up") and not final


# -- what can't be read ---------------------------------------------------------------------------

AT_FORM = {"sessionId": "ATUid_1", "phoneNumber": RETAILER, "text": ""}
HUBTEL = {
    "Type": "Initiation",
    "Mobile": "254700000001",
    "SessionId": "h1",
    "ServiceCode": "714",
    "Message": "*714*5#",
    "Operator": "safaricom",
    "Sequence": 1,
    "ClientState": "",
}
ARKESEL = {
    "sessionID": "a1",
    "userID": "u",
    "newSession": True,
    "msisdn": "254700000001",
    "userData": "*928*5#",
    "network": "MTN",
}
JSON_TYPE = {"Content-Type": "application/json"}
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


def _json(body: Any) -> tuple[bytes, dict[str, str]]:
    return json.dumps(body).encode(), JSON_TYPE


def _form(body: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return urlencode(body).encode(), FORM_TYPE


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


MALFORMED: list[tuple[str, tuple[bytes, dict[str, str]], str]] = [
    ("africastalking", (b"sessionId=\xff\xfe&text=1", FORM_TYPE), "not a form"),
    ("africastalking", (b"x", {"Content-Type": "multipart/form-data; boundary=b"}), "not a form"),
    ("africastalking", _json(AT_FORM), "missing sessionId"),
    ("africastalking", _form(_without(AT_FORM, "sessionId")), "missing sessionId"),
    ("africastalking", _form(AT_FORM | {"sessionId": ""}), "missing sessionId"),
    ("africastalking", _form(_without(AT_FORM, "phoneNumber")), "missing phoneNumber"),
    ("africastalking", _form(AT_FORM | {"phoneNumber": "12345"}), "phone number is not valid"),
    ("africastalking", _form(AT_FORM | {"phoneNumber": "+2547000"}), "phone number is not valid"),
    ("africastalking", _form(AT_FORM | {"sessionId": "1" * 600}), "sessionId is too long"),
    ("hubtel", (b"Type=Initiation", FORM_TYPE), "not JSON"),
    ("hubtel", (b"{", JSON_TYPE), "not JSON"),
    ("hubtel", (b"", JSON_TYPE), "not JSON"),
    ("hubtel", _json([HUBTEL]), "not a JSON object"),
    ("hubtel", _json(_without(HUBTEL, "SessionId")), "missing SessionId"),
    ("hubtel", _json(_without(HUBTEL, "Type")), "missing Type"),
    ("hubtel", _json(HUBTEL | {"Type": "Resume"}), "Type must be one of"),
    ("hubtel", _json(HUBTEL | {"Type": 1}), "Type must be one of"),
    ("hubtel", _json(HUBTEL | {"Type": ["Initiation"]}), "Type must be text"),
    ("hubtel", _json(HUBTEL | {"SessionId": {"id": 1}}), "SessionId must be text"),
    ("hubtel", _json(HUBTEL | {"Mobile": "0244000001x"}), "phone number is not valid"),
    ("hubtel", _json(HUBTEL | {"Mobile": 254.7}), "Mobile must be text"),
    ("hubtel", _json(HUBTEL | {"Mobile": True}), "Mobile must be text"),
    ("hubtel", _json(HUBTEL | {"Type": "Response", "Message": [1]}), "Message must be text"),
    ("hubtel", _json(HUBTEL | {"ClientState": {"a": 1}}), "ClientState must be text"),
    ("hubtel", _json(HUBTEL | {"Type": "Release", "SessionId": None}), "missing SessionId"),
    ("arkesel", (b"not json", JSON_TYPE), "not JSON"),
    ("arkesel", _json("a string"), "not a JSON object"),
    ("arkesel", _json(_without(ARKESEL, "sessionID")), "missing sessionID"),
    ("arkesel", _json(_without(ARKESEL, "msisdn")), "missing msisdn"),
    ("arkesel", _json(ARKESEL | {"msisdn": "233"}), "phone number is not valid"),
    ("arkesel", _json(ARKESEL | {"msisdn": None}), "missing msisdn"),
    ("arkesel", _json(_without(ARKESEL, "newSession")), "newSession must be true or false"),
    ("arkesel", _json(ARKESEL | {"newSession": "true"}), "newSession must be true or false"),
    ("arkesel", _json(ARKESEL | {"newSession": 1}), "newSession must be true or false"),
    ("arkesel", _json(ARKESEL | {"newSession": None}), "newSession must be true or false"),
    ("arkesel", _json(ARKESEL | {"userData": {"x": 1}}), "userData must be text"),
    ("arkesel", _json(ARKESEL | {"sessionID": False}), "sessionID must be text"),
]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_request_the_gateway_cannot_read_gets_400_with_one_line(
    client: TestClient, redis: aioredis.Redis, dialect: str
) -> None:
    cases = [(request, reason) for name, request, reason in MALFORMED if name == dialect]
    for (body, headers), reason in cases:
        response = await client.post(f"/ussd/{dialect}?token={SECRET}", data=body, headers=headers)
        text = await response.text()
        assert response.status == 400, (body[:80], text)
        assert text.startswith("bad request: ") and reason in text, (body[:80], text)
        assert "\n" not in text and "Traceback" not in text
    assert await stored_sessions(redis) == []


async def test_a_valid_number_may_come_with_or_without_plus(client: TestClient) -> None:
    for dialect in DIALECTS:
        for msisdn in (RETAILER, RETAILER.lstrip("+")):
            handset = Handset(client, dialect)
            response = await handset.post(handset.body(new=True) | _msisdn(dialect, msisdn))
            assert response.status == 200, await response.text()
            assert "AirGate" in await response.text()


def _msisdn(dialect: str, msisdn: str) -> dict[str, str]:
    name = {"africastalking": "phoneNumber", "hubtel": "Mobile", "arkesel": "msisdn"}[dialect]
    return {name: msisdn}


# -- Africa's Talking's end-of-session notification -----------------------------------------------

END_REPORT = {
    "sessionId": "ATUid_end_1",
    "serviceCode": "*384*123#",
    "networkCode": "63902",
    "phoneNumber": RETAILER,
    "status": "Failed",
    "input": "1*0788123456",
    "lastAppResponse": "CON Airtel 0788123456\nAmount (KES 5 to KES 10,000):",
    "hopsCount": "3",
    "durationInMillis": "23456",
    "cost": "KES 0.0500",
    "date": "2024-05-01 10:00:00",
    "errorMessage": "Session timed out",
}


async def _end_rows(core: Core) -> list[UssdSessionEnd]:
    async with core.sessions() as session:
        return list((await session.execute(select(UssdSessionEnd))).scalars())


async def test_the_end_of_session_report_is_recorded(client: TestClient, core: Core) -> None:
    response = await client.post(f"/ussd/africastalking/end?token={SECRET}", data=END_REPORT)
    assert (response.status, await response.text()) == (200, "ok")
    (row,) = await _end_rows(core)
    recorded = (row.gateway, row.session_id, row.msisdn, row.status, row.error)
    assert recorded == ("africastalking", "at:ATUid_end_1", RETAILER, "Failed", "Session timed out")
    assert (row.hops, row.duration_ms, row.cost) == (3, 23456, "KES 0.0500")
    assert row.at is not None
    # A count past 32 bits is not one: kept as unknown, not a failed insert (found by fuzzing).
    sparse = {"sessionId": "ATUid_end_2", "phoneNumber": RETAILER, "status": "Success"}
    sparse |= {"hopsCount": "99999999999", "durationInMillis": "-5"}
    response = await client.post(f"/ussd/africastalking/end?token={SECRET}", data=sparse)
    assert response.status == 200
    row = (await _end_rows(core))[-1]
    kept = (row.session_id, row.status, row.error, row.hops, row.duration_ms, row.cost)
    assert kept == ("at:ATUid_end_2", "Success", None, None, None, None)


async def test_an_end_report_without_the_token_or_unreadable_is_not_recorded(
    client: TestClient, core: Core
) -> None:
    for query in ("", "?token=", "?token=wrong"):
        response = await client.post(f"/ussd/africastalking/end{query}", data=END_REPORT)
        assert (response.status, await response.text()) == (403, "forbidden")
    url = f"/ussd/africastalking/end?token={SECRET}"
    unreadable = (
        _without(END_REPORT, "sessionId"),
        END_REPORT | {"phoneNumber": "nope"},
        END_REPORT | {"sessionId": "s" * 94},  # 97 with "at:": longer than the column
        END_REPORT | {"errorMessage": "a\x00b"},  # PostgreSQL stores no NUL
    )
    for bad in unreadable:
        response = await client.post(url, data=bad)
        assert response.status == 400
        assert (await response.text()).startswith("bad request: ")
    multipart = FormData(_without(END_REPORT, "phoneNumber"))
    multipart.add_field("phoneNumber", RETAILER.encode(), filename="number.txt")
    response = await client.post(url, data=multipart)
    assert (await response.text()) == "bad request: phoneNumber must be text"
    assert await _end_rows(core) == []
