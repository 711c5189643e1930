"""The main menus, and each role's machine: its menu plus the flows it may enter, and the data
each of their journeys keeps.

The retailer's numbering is a contract (printed on posters, remembered by thumbs): append, never
renumber. What a party may do is still checked by the core services, not by which menu it saw.
"""

from __future__ import annotations

from core.conversation.channel import Shows
from core.conversation.flow import MENU, Flow, MenuItem, Step, T, choices, fire
from core.conversation.flows import (
    account,
    apikeys,
    broadcast,
    cases,
    distributor,
    link,
    money,
    requests,
    retailers,
    statement,
    support,
    topup,
)

RETAILER_MENU: list[MenuItem] = [
    (T.AIRTIME, "menu.airtime"),  # 1
    (T.DATA, "menu.data"),  # 2
    (T.BALANCE, "menu.balance"),  # 3
    (T.BUY, "menu.buy"),  # 4
    (T.STATEMENT, "menu.statement"),  # 5
    (T.SUPPORT, "menu.support"),  # 6
    (T.ACCOUNT, "menu.account"),  # 7
]
DISTRIBUTOR_MENU: list[MenuItem] = [
    (T.BALANCE, "menu.balance"),  # 1
    (T.SELL, "menu.sell"),  # 2
    (T.LOW_STOCK, "menu.low_stock"),  # 3
    (T.STATEMENT, "menu.statement"),  # 4
    (T.ACCOUNT, "menu.account"),  # 5
    (T.RETAILERS, "menu.retailers"),  # 6
    (T.TODAY, "menu.today"),  # 7
    (T.REQUESTS, "requests.menu"),  # 8
    (T.BROADCAST, "broadcast.menu"),  # 9
    (T.CASES, "cases.menu"),  # 10
    # Where a screen can carry a file (Telegram): the new key goes in one, never in a text
    # (a final screen's text is kept for a retry). Not on USSD.
    (T.API_KEYS, "menu.apikeys", Shows.DOCUMENT),  # 11
]

RETAILER = Flow(
    name="retailer",
    initial=MENU,
    table=[
        *topup.TABLE,
        *money.BALANCE_TABLE,
        *money.BUY_TABLE,
        *support.TABLE,
        *account.TABLE,
        *statement.TABLE,
    ],
    steps={
        MENU: Step(choices("menu.title", RETAILER_MENU), fire),
        **topup.STEPS,
        **money.STEPS,
        **support.STEPS,
        **account.STEPS,
        **statement.STEPS,
    },
    journeys={
        **topup.JOURNEYS,
        **money.JOURNEYS,
        **support.JOURNEYS,
        **account.JOURNEYS,
        **statement.JOURNEYS,
    },
)
_DISTRIBUTOR_MONEY: dict[str, Step] = {
    s: money.STEPS[s] for s in (money.S.BALANCE_PIN, money.S.STATEMENT_PIN)
}
DISTRIBUTOR = Flow(
    name="distributor",
    initial=MENU,
    table=[
        *money.BALANCE_TABLE,
        *distributor.TABLE,
        *retailers.TABLE,
        *account.TABLE,
        *broadcast.TABLE,
        *requests.TABLE,
        *cases.TABLE,
        *statement.TABLE,
        *apikeys.TABLE,
    ],
    steps={
        MENU: Step(choices("menu.title", DISTRIBUTOR_MENU), fire),
        **_DISTRIBUTOR_MONEY,
        **distributor.STEPS,
        **retailers.STEPS,
        **account.STEPS,
        **broadcast.STEPS,
        **requests.STEPS,
        **cases.STEPS,
        **statement.STEPS,
        **apikeys.STEPS,
    },
    journeys={
        **distributor.JOURNEYS,
        **retailers.JOURNEYS,
        **account.JOURNEYS,
        **broadcast.JOURNEYS,
        **requests.JOURNEYS,
        **cases.JOURNEYS,
        **statement.JOURNEYS,
        **apikeys.JOURNEYS,
    },
)
FLOWS = {"retailer": RETAILER, "distributor": DISTRIBUTOR}
LINK_FLOW = Flow(
    name="link", initial=MENU, table=link.TABLE, steps=link.STEPS, journeys=link.JOURNEYS
)
