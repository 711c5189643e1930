"""A USSD session is bound to the number that opened it: a hop from another number carrying its
session id (a gateway reusing ids, a forged call) neither sees nor changes it, and gets a session
of its own."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.channels.conftest import AtPhone

OWNER, OTHER, STRANGER = "+254700000001", "+254700000002", "+254711111111"


async def _owner_on_the_amount(client: TestClient) -> AtPhone:
    owner = AtPhone(client, OWNER)
    await owner.dial()
    await owner.send("1")
    assert "Amount" in await owner.send("0788123456")
    return owner


def _same_id(client: TestClient, owner: AtPhone, msisdn: str) -> AtPhone:
    return AtPhone(client, msisdn, session_id=owner.session_id, inputs=list(owner.inputs))


async def test_another_number_mid_session_neither_sees_nor_changes_it(client: TestClient) -> None:
    owner = await _owner_on_the_amount(client)
    other = _same_id(client, owner, OTHER)
    seen = await other.send("500")  # the owner's path, then an amount
    assert "0788123456" not in seen and "500" not in seen
    assert seen.startswith("CON Your session expired. Starting again.\nAirGate\n1. Airtime")
    # The owner's journey is where it was: the amount is asked for, then confirmed.
    assert (await owner.send("700")).startswith("CON Top up KES 700 to 0788123456")


async def test_a_reused_id_dialled_by_another_number_is_a_fresh_session_of_its_own(
    client: TestClient,
) -> None:
    owner = await _owner_on_the_amount(client)
    other = AtPhone(client, OTHER, session_id=owner.session_id)
    assert (await other._post("")).startswith("CON AirGate\n1. Airtime top-up")
    other.inputs = []
    assert (await other.send("3")).startswith("CON Enter your PIN")  # its own journey goes on
    assert (await owner.send("700")).startswith("CON Top up KES 700 to 0788123456")
    assert (await other.send("1234")).startswith("END")


async def test_an_unregistered_number_on_a_taken_id_learns_nothing(client: TestClient) -> None:
    owner = await _owner_on_the_amount(client)
    stranger = AtPhone(client, STRANGER, session_id=owner.session_id)
    assert (await stranger._post("")).startswith("END This number is not registered")
    again = _same_id(client, owner, STRANGER)
    assert (await again._post("*".join(owner.inputs))).startswith("END This number")
    assert (await owner.send("700")).startswith("CON Top up KES 700 to 0788123456")
