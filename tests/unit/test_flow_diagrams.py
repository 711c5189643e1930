"""The Mermaid pictures in docs/FLOWS.md are the flows' tables, not a memory of them."""

from __future__ import annotations

from pathlib import Path

from core.conversation.diagram import document

DOC = Path(__file__).resolve().parents[2] / "docs" / "FLOWS.md"


def test_docs_flows_is_generated_from_the_tables() -> None:
    assert DOC.read_text() == document(), (
        "docs/FLOWS.md is stale: run `python -m core.conversation.diagram > docs/FLOWS.md`"
    )


def test_every_state_in_a_table_has_a_step_and_every_step_is_reachable() -> None:
    from core.conversation.flows import FLOWS

    for flow in FLOWS.values():
        named = {str(s) for row in flow.table for s in (row[1], row[2])}
        reached = {str(row[2]) for row in flow.table} | {flow.initial}
        assert named <= set(flow.steps), flow.name
        assert set(flow.steps) <= reached, (flow.name, set(flow.steps) - reached)
