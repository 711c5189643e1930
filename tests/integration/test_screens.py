"""Every screen of every menu, in every language, fits a USSD page without being cut.

The renderer never exceeds the limit (it cuts as a last resort, ussd/render.py); this checks the
texts are written so that it never has to: worst-case values in every catalogue text, and every
step's screen from a real database, with the longest re-prompt reason above it.
"""

from __future__ import annotations

import string

import msgspec
import pytest

from core.context import Core
from core.conversation.flow import MENU, Ctx, Flow
from core.conversation.flows import FLOWS
from core.conversation.sessions import Journey, Session
from core.conversation.types import Expects, Turn
from core.i18n import LANGUAGES, catalogue, t
from core.jobs.queue import JobQueue
from core.services.seed import DISTRIBUTOR_MSISDN, seed_demo
from ussd.render import Limits, cost, pages

LIMITS = Limits()
# The longest value each placeholder takes in practice.
WORST = {
    "amount": "KES 1,000,000.50",
    "available": "KES 1,000,000.50",
    "needed": "KES 1,000,000.50",
    "price": "KES 1,000,000.50",
    "payable": "KES 1,000,000.50",
    "cash": "KES 1,000,000.50",
    "credit": "KES 1,000,000.50",
    "limit": "KES 1,000,000.50",
    "low": "KES 1,000,000.50",
    "high": "KES 1,000,000.50",
    "number": "0788123456",
    "operator": "Safaricom",
    "bundle": "5GB 30 days",
    "ref": "a1b2c3d4e5f6a1b2c3d4e5f6:12",
    "case": "123456",
    "name": "N" * 24,
    "unlocker": "Demo Distributor Nairobi West (+254700000100)",
    "what": "Low-stock retailers",
    "status": "pending approval",
    "seconds": "119",
    "attempts_left": "2",
    "product": "airtime",
    "shop": "S" * 30,
    "stock": "KES 1,000,000.50",
    "last": "25/11 18:45",
    "start": "2026-11-01",
    "end": "2026-11-25",
    "count": "1234",
    "open": "12",
    "hours": "72",
    "code": "Wdl8X0dBrS1nvPMy",
    "request": "1234567",
    "seller": "S" * 30,
    "reference": "X" * 24,
    "why": "not enough stock at the distributor",
    "reason": "signale par la boutique",
    "phone": "0788123456",
    "age": "siku 365",
    "telegram": "1234",
    "sms": "1234",
    "excerpt": "M" * 37 + "...",
    "id": "123456",
    "sent": "1234",
    "total": "1234",
    "failed": "1234",
    "blocked": "1234",
    "unconfirmed": "8",
    "currency": "KES",
    "time": "25/11 18:45",
    "opref": "R" * 24,
    "first": "123456",
    "note": "N" * 60,
    "day": "2026-11-25",
    "delivered": "1234",
    "value": "KES 1,000,000.50",
    "margin": "KES 1,000,000.50",
    "bought": "KES 1,000,000.50",
    "sold": "KES 1,000,000.50",
    "deposits": "KES 1,000,000.50",
    "active": "1234",
    "inactive": "1234",
    "keys": "12",
    "scopes": "read, topup, stock, manage",
    "prefix": "agk_AbCdEfGh",
    "account": "a" * 24,  # an aggregator account's longest name (AIRGATE_PROVIDERS)
    "balance": "KES 1,000,000.50",
}


def _journeys(flow: Flow) -> dict[str, type[Journey] | None]:
    """The kind of data each state of ``flow`` is shown with: its journey's, from the menu on."""
    kinds: dict[str, type[Journey] | None] = {}
    todo = [
        (str(dest), flow.journeys.get(trigger)) for trigger, src, dest in flow.table if src == MENU
    ]
    while todo:
        state, kind = todo.pop()
        if state not in kinds:
            kinds[state] = kind
            todo += [(str(dest), kind) for _trigger, src, dest in flow.table if src == state]
    return kinds


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# The morning report's texts are an SMS of several parts (or a photo's caption), never a USSD
# screen: three concatenated GSM-7 parts of 153 characters each.
SMS_REPORT = 3 * 153


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_with_worst_case_values_fits_one_page(language: str) -> None:
    for key, template in catalogue(language).items():
        text = template.format(**{name: WORST[name] for name in _fields(template)})
        limit = SMS_REPORT if key.startswith("report.") else LIMITS.gsm7
        assert cost(text)[0] <= limit, f"{language}:{key} is {cost(text)[0]}: {text!r}"


@pytest.mark.parametrize("language", LANGUAGES)
async def test_every_step_of_every_menu_fits_with_a_reason_above(core: Core, language: str) -> None:
    await seed_demo(core, retailers=3)
    reasons = [t(language, "error.choose"), t(language, "error.amount_format")]
    longest_reason = max([*reasons, t(language, "error.wrong_pin", attempts_left=2)], key=len)
    roles = {"retailer": "+254700000001", "distributor": DISTRIBUTOR_MSISDN}
    for role, flow in FLOWS.items():
        kinds = _journeys(flow)
        for state, step in flow.steps.items():
            data = {
                "n": "+254788123456",
                "o": "airtel-ke",
                "a": 99_999_900,
                "dm": 99_999_900,
                "b": "safaricom-ke:data-5gb-30d",
                "rid": 3,
                "rn": "N" * 24,
                "rm": "+254700000001",
                "ago": 119,
                "act": "invite",
                "q": 1_234_567,
                "qt": 0,
                "dr": "X" * 24,
                "bt": "M" * 300,
                "ba": "all",
                "t": "T3B1ZXXSMQ2NHTKJ",
                "ta": 99_999_950,
                "tc": "KES",
                "df": "2026-11-01",
                "dt": "2026-11-25",
                "cid": 1_234_567,
                "nm": "N" * 24,
                "am": "KES 1,000,000.50",
                "nb": "0788123456",
                "rf": "T3B1ZXXSMQ2NHTKJ",
                "nt": "N" * 160,
            }
            if state.startswith("data."):
                data["o"] = "safaricom-ke"
            if state.startswith("requests."):
                data["act"] = "approve"
            if state.startswith("cases."):
                data["act"] = "refund"  # its confirmation is the longest of the three (fr)
            ctx = Ctx(
                core=core,
                queue=JobQueue(None),  # type: ignore[arg-type]  # shows never enqueue
                turn=Turn("ussd", "s", roles[role], ""),
                session=Session(
                    state=state,
                    data=None
                    if (kind := kinds.get(state)) is None
                    else msgspec.convert(data, kind),
                    party=2 if role == "distributor" else 3,
                    role=role,
                    lang=language,
                ),
            )
            screen = await step.show(ctx)
            if step.expects != Expects.CHOICE and not screen.final:
                screen = type(screen)(f"{longest_reason}\n{screen.text}", screen.options)
            rendered = pages(screen, LIMITS)
            where = f"{language}:{role}:{state}"
            assert all(cost(page)[0] <= LIMITS.gsm7 for page in rendered), where
            assert rendered[0].startswith(screen.text), f"{where} was cut: {rendered[0]!r}"
