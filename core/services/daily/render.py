"""A daily report as words (an SMS summary, a photo's caption) and as CSV (one row a party, or one
party's report by section). Amounts in CSV are major units without thousands separators."""

from __future__ import annotations

import csv
import io

from core.i18n import t
from core.money import format_minor
from core.services.daily.figures import Detail, PartyDay

CURRENCY = "KES"  # the demo catalog's one currency; a report of several would split by it

PARTY_COLUMNS = [
    "party_id", "role", "name", "msisdn", "delivered", "delivered_value", "failed", "pending",
    "margin", "stock_bought", "price_paid", "stock_sold", "price_received", "deposits",
    "credit_used",
]  # fmt: skip


def major(amount_minor: int) -> str:
    return format_minor(amount_minor).replace(",", "")


def money(amount_minor: int) -> str:
    return format_minor(amount_minor, CURRENCY)


def party_row(day: PartyDay) -> list[object]:
    return [
        day.party_id, day.role, day.name, day.msisdn, day.delivered, major(day.delivered_minor),
        day.failed, day.open, major(day.margin_minor), major(day.bought_face_minor),
        major(day.bought_price_minor), major(day.sold_face_minor), major(day.sold_price_minor),
        major(day.deposits_minor), major(day.credit_used_minor),
    ]  # fmt: skip


def everyone_csv(days: list[PartyDay]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PARTY_COLUMNS)
    writer.writerows(party_row(day) for day in days)
    return out.getvalue().encode()


def detail_csv(report: Detail) -> bytes:
    """Sections one after another, each with its header: the party, products, hours, week,
    retailers (a distributor's)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", *PARTY_COLUMNS])
    writer.writerow(["party", *party_row(report.party)])
    writer.writerow(
        ["section", "operator", "product", "delivered", "delivered_value", "failed",
         "failed_value", "pending", "pending_value"]
    )  # fmt: skip
    for p in report.products:
        writer.writerow(
            ["product", p.operator, p.product, p.delivered, major(p.delivered_minor), p.failed,
             major(p.failed_minor), p.open, major(p.open_minor)]
        )  # fmt: skip
    writer.writerow(["section", "hour", "delivered_value"])
    writer.writerows(["hour", hour, major(v)] for hour, v in enumerate(report.by_hour))
    writer.writerow(["section", "date", "delivered_value"])
    writer.writerows(["week", day.isoformat(), major(v)] for day, v in report.week)
    if report.retailers:
        writer.writerow(
            ["section", "rank", "party_id", "name", "msisdn", "delivered", "delivered_value",
             "lowest_stock", "low_stock"]
        )  # fmt: skip
        for rank, r in enumerate(report.retailers, 1):
            lowest = "" if r.lowest_stock_minor is None else major(r.lowest_stock_minor)
            writer.writerow(
                ["retailer", rank, r.party_id, r.name, r.msisdn, r.delivered,
                 major(r.delivered_minor), lowest, "yes" if r.low else "no"]
            )  # fmt: skip
    return out.getvalue().encode()


def summary(report: Detail, language: str) -> str:
    """A few lines in the party's language: the day's figures, and its network's for a
    distributor (an SMS, or a photo's caption)."""
    day = report.party
    lines = [
        t(
            language,
            "report.summary",
            day=report.day.isoformat(),
            delivered=day.delivered,
            value=money(day.delivered_minor),
            failed=day.failed,
            open=day.open,
            margin=money(day.margin_minor),
            bought=money(day.bought_face_minor),
            sold=money(day.sold_face_minor),
            deposits=money(day.deposits_minor),
            credit=money(day.credit_used_minor),
        )
    ]
    if report.retailers:
        inactive = len(report.inactive)
        lines.append(
            t(
                language,
                "report.network",
                active=len(report.retailers) - inactive,
                inactive=inactive,
                low=len(report.low_stock),
            )
        )
        best = report.retailers[0]
        if best.delivered_minor:
            lines.append(
                t(language, "report.top", name=best.name, value=money(best.delivered_minor))
            )
    return "\n".join(lines)
