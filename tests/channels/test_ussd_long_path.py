"""Africa's Talking's ``text`` grows with every hop: a legitimate session past 512 characters goes
on, and one past what any session reaches gets a polite END in the user's language, never an HTTP
error (docs/USSD.md, "How long a path may be")."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from core.context import Core
from core.i18n import t
from core.services import parties
from core.services.audit import Actor
from core.services.seed import DISTRIBUTOR_MSISDN
from tests.channels.conftest import SECRET, AtPhone
from ussd.gateway import MAX_PATH_CHARS

NOTICE = "Stock of Safaricom is back at the depot today, come early. " * 3


async def test_a_broadcast_typed_three_times_goes_past_512_characters(client: TestClient) -> None:
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    await distributor.dial()
    await distributor.send("9")
    for _ in range(3):  # typed, gone back, typed again
        shown = await distributor.send(NOTICE[:160])
        assert shown.startswith("CON"), shown
        back = await distributor.send("0")
        assert back.startswith("CON"), back
    assert (await distributor.send(NOTICE[:160])).startswith("CON")
    assert len("*".join(distributor.inputs)) > 512


async def test_a_path_past_any_session_ends_politely_in_the_users_language(
    client: TestClient, core: Core
) -> None:
    party = await parties.identify(core, user_ref="+254700000001")
    assert party is not None
    await parties.set_language(core, actor=Actor.cli(), party_id=party.id, language="fr")
    phone = AtPhone(client, "+254700000001")
    await phone.dial()
    answer = await phone._post("1*" + "5" * MAX_PATH_CHARS)
    assert answer == f"END {t('fr', 'error.too_long')}"


async def test_a_body_past_the_bound_ends_politely_too(client: TestClient) -> None:
    form = {"sessionId": "ATUid_big", "phoneNumber": "+254700000001", "text": "1*" * 40_000}
    response = await client.post(f"/ussd/africastalking?token={SECRET}", data=form)
    assert response.status == 200
    assert await response.text() == f"END {t('en', 'error.too_long')}"


@pytest.mark.parametrize(("token", "status"), [(SECRET, 200), ("wrong", 403)])
async def test_a_megabyte_is_answered_not_reset(
    client: TestClient, token: str, status: int
) -> None:
    """Answered before the body is read (a wrong token, a body past the bound), a client still
    sending its megabyte gets the answer: the rest is read and dropped, not reset under it (the
    USSD fuzz sweep met the reset when aiohttp's lingering read was off)."""
    body = b"sessionId=ATUid_mb&phoneNumber=%2B254700000001&text=" + b"1" * 1_000_000
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for _ in range(5):  # a reset depends on timing: give it several chances
        response = await client.post(
            f"/ussd/africastalking?token={token}", data=body, headers=headers
        )
        assert response.status == status
        await response.read()
