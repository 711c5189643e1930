"""A distributor's support queue on USSD, over HTTP: the menu item, the paged list, one case."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from core.context import Core
from core.services import support
from core.services.audit import Actor
from core.services.seed import DISTRIBUTOR_MSISDN
from core.services.topups import request_topup
from tests.channels.conftest import AtPhone

PIN = "1234"
SHOP = "+254700000001"


def _item(menu: str, label: str) -> str:
    """The number of ``label`` on a menu screen (the integrator may reorder the later items)."""
    line = next(line for line in menu.split("\n") if line.endswith(f". {label}"))
    return line.split(".")[0]


async def _cases_menu(client: TestClient) -> tuple[AtPhone, str]:
    distributor = AtPhone(client, DISTRIBUTOR_MSISDN)
    menu = await distributor.dial()
    while "Support cases" not in menu and "98 More" in menu:
        menu = await distributor.send("98")
    return distributor, await distributor.send(_item(menu, "Support cases"))


async def test_a_reported_top_up_shows_in_the_distributors_queue(
    client: TestClient, core: Core
) -> None:
    shop = AtPhone(client, SHOP)
    await shop.dial()
    await shop.send("1")
    await shop.send("0788123456")
    await shop.send("500")
    assert (await shop.send(PIN)).startswith("END Top-up of KES 500 to 0788123456 accepted.")
    await shop.dial()
    await shop.send("6")  # Support: its last top-ups
    await shop.send("1")
    opened = await shop.send("1")  # yes, open a case
    assert opened.startswith("END Case ")
    case_id = opened.split()[2]

    distributor, listed = await _cases_menu(client)
    assert listed.startswith(f"CON Open support cases:\n1. #{case_id} Demo Shop 001 KES 500 0h")
    detail = await distributor.send("1")
    assert detail.startswith(
        f"CON Case {case_id}: shop report\nDemo Shop 001 0700000001\n"
        "KES 500 to 0788123456, 0h ago\nRef T"
    )
    assert detail.endswith(
        "\n1. Retry (same reference)\n2. Refund\n3. Close with a note\n0 Back 00 Menu"
    )


async def test_a_long_queue_pages_and_keeps_its_numbers(client: TestClient, core: Core) -> None:
    async with core.sessions() as session:
        from core.services.parties import get_party

        shop = await get_party(session, SHOP, country="KE")
    for n in range(12):
        topup = await request_topup(
            core, party_id=shop.id or 0, msisdn=f"07881234{n:02d}", amount_minor=5_000, channel="t"
        )
        await support.open_case(
            core, actor=Actor.party(shop.id or 0, "ussd"), party_id=shop.id or 0, topup_id=topup.id
        )
    distributor, first = await _cases_menu(client)
    assert first.startswith("CON Open support cases:\n1. ") and first.endswith("\n98 More")
    second = await distributor.send("98")
    assert "\n0 Back" in second and "\n1. " not in second
    last_number = second.split("\n")[-3].split(".")[0]  # the last option above the footers
    detail = await distributor.send(last_number)  # chosen from the second page
    assert detail.startswith("CON Case ") and "KES 50 to 07881234" in detail


async def test_an_empty_queue_ends_the_session(client: TestClient) -> None:
    _distributor, shown = await _cases_menu(client)
    assert shown == "END Your retailers have no open support cases."
