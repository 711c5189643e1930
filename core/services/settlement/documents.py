"""A settlement as documents: CSV (for a spreadsheet) and PDF (a statement a business can file).

Invariant: both are functions of the :class:`Settlement` alone, with no clock in them: the PDF's
creation date is the end of the period and its producer fixed, so regenerating a run gives the
same bytes (fpdf2 derives the file's /ID from the content and that date).
"""

from __future__ import annotations

import csv
import io
import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from core.money import format_minor
from core.services.settlement.figures import Late, PairFlows, Terms, bps_of, terms_for

PRODUCER = "AirGate settlement"
CURRENCY = "KES"


@dataclass(frozen=True, slots=True)
class Side:
    party_id: int
    name: str
    msisdn: str

    @property
    def label(self) -> str:
        return f"#{self.party_id} {self.name} ({self.msisdn})"


@dataclass(frozen=True, slots=True)
class Correction:
    late: Late
    corrects_period: str
    corrects_run_id: int | None  # None: that period was never settled for the pair
    owed_minor: int  # what it adds to the buyer's debt


@dataclass
class Settlement:
    period: str
    zone: str
    period_end: datetime
    seller: Side
    buyer: Side
    through_transfer_id: int
    previous: tuple[int, str] | None  # (run id, period) carried forward from
    terms: Terms
    flows: PairFlows
    opening_due_minor: int
    corrections: list[Correction] = field(default_factory=list)

    @property
    def credit_outstanding_minor(self) -> int:
        period = self.flows.period
        return self.flows.credit_before + period.on_credit - period.repaid

    @property
    def amount_due_minor(self) -> int:
        return (
            self.opening_due_minor
            + sum(c.owed_minor for c in self.corrections)
            + self.flows.period.owed(self.terms)
        )

    @property
    def due_by(self) -> str:
        due = self.amount_due_minor
        return (
            "buyer pays seller" if due > 0 else ("seller pays buyer" if due < 0 else "nothing due")
        )


def _major(amount_minor: int) -> str:
    return format_minor(amount_minor).replace(",", "")


Row = list[str]


def rows(doc: Settlement) -> list[Row]:
    """The document's lines: item, operator, face, amount, note (amounts in major units)."""
    period, terms = doc.flows.period, doc.terms
    out: list[Row] = [
        ["settlement", "", "", "", doc.period],
        ["seller", "", "", "", doc.seller.label],
        ["buyer", "", "", "", doc.buyer.label],
        ["ledger read through transfer", "", "", "", str(doc.through_transfer_id)],
    ]
    carried = f"carried from run #{doc.previous[0]} ({doc.previous[1]})" if doc.previous else ""
    out.append(["opening due", "", "", _major(doc.opening_due_minor), carried or "first run"])
    for op in sorted(period.sold_face):
        bps = terms_for(terms, op)[0]
        out.append(["stock sold", op, _major(period.sold_face[op]), "", f"discount {bps} bps"])
    out += [
        ["price after discount", "", "", _major(period.price), ""],
        ["paid in cash at sale", "", "", _major(period.paid_cash), ""],
        ["credit used", "", "", _major(period.on_credit), ""],
        ["deposits", "", "", _major(period.deposits + period.repaid), ""],
        ["of which credit repaid", "", "", _major(period.repaid), ""],
        ["credit outstanding at end", "", "", _major(doc.credit_outstanding_minor), ""],
    ]
    for op in sorted(period.clawed_face):
        value = period.clawback_value({op: terms_for(terms, op)})
        out.append(["claw-back", op, _major(period.clawed_face[op]), _major(value), ""])
    for op in sorted(period.sold_face):
        commission = terms_for(terms, op)[1]
        if commission:
            value = bps_of(period.sold_face[op], commission)
            out.append(["commission", op, _major(period.sold_face[op]), _major(value),
                        f"{commission} bps"])  # fmt: skip
    local = ZoneInfo(doc.zone)
    for c in doc.corrections:
        late = c.late
        run = f"run #{c.corrects_run_id}" if c.corrects_run_id else "not settled"
        kind, _, code = late.asset.partition(":")
        stock = kind == "AIRTIME"  # else cash: no operator, no face
        out.append(
            ["correction", code if stock else "", _major(late.amount_minor) if stock else "",
             _major(c.owed_minor),
             f"transfer {late.transfer_id} {late.kind} dated "
             f"{late.at.astimezone(local):%Y-%m-%d %H:%M}: corrects {c.corrects_period} ({run})"]
        )  # fmt: skip
    out.append(["amount due", "", "", _major(abs(doc.amount_due_minor)), doc.due_by])
    return out


def as_csv(doc: Settlement) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["item", "operator", "face", "amount", "note"])
    writer.writerows(rows(doc))
    return out.getvalue().encode()


def _latin(text: str) -> str:
    """The PDF's core font is Latin-1: anything else shows as '?', never an error."""
    return text.encode("latin-1", "replace").decode("latin-1")


COLUMNS_MM = (12, 62, 90, 116, 144)  # x of each column: item, operator, face, amount, note
RIGHT = (False, False, True, True)  # face and amount: right-aligned
LINE_MM, NOTE_CHARS = 5.5, 34


def as_pdf(doc: Settlement) -> bytes:
    """An A4 page (more if needed) of the rows, drawn as text at fixed places: fpdf2's cells and
    line breaking cost ten times more and a month's run draws one document per pair."""
    from fpdf import FPDF  # here: fpdf2 costs a quarter of a second to import, every CLI start

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_creation_date(doc.period_end)
    pdf.set_producer(PRODUCER)
    pdf.set_title(f"Settlement {doc.period}")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=14)
    pdf.text(COLUMNS_MM[0], 20, _latin(f"AirGate settlement {doc.period} ({CURRENCY})"))
    y = 32.0
    for n, row in enumerate([["item", "operator", "face", "amount", "note"], *rows(doc)]):
        pdf.set_font("Helvetica", style="B" if n == 0 else "", size=9)
        notes = textwrap.wrap(_latin(row[4]), NOTE_CHARS) or [""]
        for col in range(4):
            text, x = _latin(row[col]), float(COLUMNS_MM[col])
            if RIGHT[col]:  # ends 3 mm before the next column
                x = COLUMNS_MM[col + 1] - 3 - pdf.get_string_width(text)
            pdf.text(x, y, text)
        for line in notes:
            pdf.text(COLUMNS_MM[4], y, line)
            y += LINE_MM
        if n == 0:
            pdf.line(COLUMNS_MM[0], y - LINE_MM + 1.5, 200, y - LINE_MM + 1.5)
        if y > 280:
            pdf.add_page()
            y = 20.0
    return bytes(pdf.output())
