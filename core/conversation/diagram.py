"""docs/FLOWS.md, generated from the flows' tables: ``python -m core.conversation.diagram``.

tests/unit/test_flow_diagrams.py fails when the file and the tables disagree.
"""

from __future__ import annotations

import sys

from core.conversation.flows import FLOWS
from core.conversation.flows.menus import DISTRIBUTOR_MENU, RETAILER_MENU
from core.i18n import t

HEADER = """# Conversation flows

Generated from the transition tables in `core/conversation/flows/` by
`python -m core.conversation.diagram > docs/FLOWS.md`; a test fails when this file is stale.
Every step also takes `00` (main menu) and `0` (back; on a confirmation, cancel), and a list of
options takes `98` (more). Steps not shown end the session with a final screen (a result, or why
not). See docs/USSD.md for the engine.
"""


def document() -> str:
    parts = [HEADER]
    menus = {"retailer": RETAILER_MENU, "distributor": DISTRIBUTOR_MENU}
    for role, flow in FLOWS.items():
        items = " · ".join(
            f"{i} {t('en', item[1])}" + (f" ({item[2]} channels only)" if len(item) == 3 else "")
            for i, item in enumerate(menus[role], 1)
        )
        parts.append(f"## {role.capitalize()}\n\nMain menu: {items}\n")
        parts.append(f"```mermaid\n{flow.mermaid()}\n```\n")
    return "\n".join(parts)


def main() -> None:
    sys.stdout.write(document())


if __name__ == "__main__":
    main()
