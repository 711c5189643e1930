"""The daily report's chart: one tall PNG for a phone's screen, three panels: sales by local hour,
sales by operator, the week's trend; titles and labels in the party's language.

matplotlib's object API (``Figure`` on an Agg canvas), never ``pyplot``: no global state, no
display, safe in a worker thread. Imported only here, when a chart is drawn (it is slow to import).
"""

from __future__ import annotations

import io

from core.i18n import t
from core.services.daily.figures import Detail

WIDTH_IN, HEIGHT_IN, DPI = 6.0, 10.0, 150  # 900 x 1500 px: a phone's screen, text still sharp
BAR = "#1f6feb"
WEEK = "#2da44e"
TODAY = "#bf8700"


def _major(amount_minor: int) -> float:
    return amount_minor / 100


def draw(report: Detail, *, language: str, currency: str = "KES") -> bytes:
    """The chart as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    title = t(language, "report.chart_title", day=report.day.isoformat())
    figure.suptitle(f"{report.party.name}\n{title}", fontsize=15, fontweight="bold")
    hours, by_op, week = figure.subplots(3, 1, height_ratios=[1.2, 0.9, 1.0])
    amount = FuncFormatter(lambda value, _: f"{value:,.0f}")

    hours.bar(range(len(report.by_hour)), [_major(v) for v in report.by_hour], color=BAR)
    hours.set_title(t(language, "report.by_hour"), fontsize=13)
    hours.set_xlabel(t(language, "report.hour"), fontsize=11)
    hours.set_xticks(range(0, len(report.by_hour), 3))
    hours.set_xlim(-0.6, len(report.by_hour) - 0.4)

    operators = sorted(report.by_operator, key=lambda op: report.by_operator[op])
    by_op.set_title(t(language, "report.by_operator"), fontsize=13)
    if any(report.by_operator.values()):
        values = [_major(report.by_operator[op]) for op in operators]
        bars = by_op.barh(operators, values, color=BAR)
        by_op.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=10)
        by_op.margins(x=0.25)
    else:
        by_op.text(0.5, 0.5, t(language, "report.none"), ha="center", va="center", fontsize=12,
                   transform=by_op.transAxes)  # fmt: skip
        by_op.set_yticks([])

    days = [day.strftime("%d/%m") for day, _ in report.week]
    colours = [WEEK] * (len(days) - 1) + [TODAY]
    week.bar(days, [_major(v) for _, v in report.week], color=colours)
    week.set_title(t(language, "report.week"), fontsize=13)

    for axes in (hours, by_op, week):
        axes.tick_params(labelsize=10)
        axes.spines[["top", "right"]].set_visible(False)
    for axes in (hours, week):
        axes.yaxis.set_major_formatter(amount)
        axes.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        axes.set_ylabel(currency, fontsize=11)
        axes.grid(axis="y", alpha=0.3)
    by_op.xaxis.set_major_formatter(amount)
    by_op.set_xlabel(currency, fontsize=11)
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
