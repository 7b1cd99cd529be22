"""A one-page report with charts (PNG or PDF, A4 portrait) that a leader can forward as is.

matplotlib with the Agg backend (no display needed) and DejaVu Sans, which has every
Vietnamese glyph. A chart with nothing to show says so instead of drawing empty axes.
"""
from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from qms.reports.labels import label, num, rating_label, satisfied_levels, when_text, word  # noqa: E402
from qms.reports.stats import Report  # noqa: E402

FONT = "DejaVu Sans"
BLUE, GREEN, ORANGE, GREY, RED = "#1f5fa8", "#2e9b4f", "#e07b00", "#777777", "#c62828"
# least to most satisfied
RATING_COLORS = {2: [RED, GREEN], 3: [RED, "#f2b705", GREEN], 4: [RED, "#f2b705", "#8bc34a", GREEN],
                 5: [RED, "#ef6c00", "#f2b705", "#8bc34a", GREEN]}


def _no_data(ax, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color=GREY, transform=ax.transAxes)


def _style(ax, title: str, page_x: float | None = None) -> None:
    """Title above the axes; page_x puts its start at that x of the page instead (for bar
    charts whose labels stick out left of the axes)."""
    x = 0.0
    if page_x is not None:
        box = ax.get_position()
        x = (page_x - box.x0) / box.width
    ax.text(x, 1.04, title, fontsize=10.5, fontweight="bold", transform=ax.transAxes, va="bottom")
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)


def build_figure(report: Report, lang: str = "vi", generated: dt.datetime | None = None) -> Figure:
    fig = Figure(figsize=(8.27, 11.69))       # A4 portrait
    fig.set_dpi(150)
    import matplotlib as mpl
    if generated is None:          # in the site's time zone, not the machine's
        tz = ZoneInfo(report.timezone) if report.timezone else None
        generated = dt.datetime.now(tz)
    with mpl.rc_context({"font.family": FONT}):
        _header(fig, report, lang, generated)
        # one grid per row: the bar charts need room on the left for their labels
        top = fig.add_gridspec(1, 2, left=0.08, right=0.97, top=0.79, bottom=0.575, wspace=0.25)
        _arrivals(fig.add_subplot(top[0, 0]), report, lang)
        _waits_by_hour(fig.add_subplot(top[0, 1]), report, lang)
        mid = fig.add_gridspec(1, 1, left=0.47, right=0.97, top=0.51, bottom=0.33)
        _service_waits(fig.add_subplot(mid[0, 0]), report, lang)
        low = fig.add_gridspec(1, 2, left=0.2, right=0.97, top=0.265, bottom=0.075, wspace=0.5)
        _ratings(fig.add_subplot(low[0, 0]), report, lang)
        _counters(fig.add_subplot(low[0, 1]), report, lang)
        fig.text(0.08, 0.012, textwrap.fill(word("footer", lang), 140), fontsize=7, color=GREY, va="bottom")
    return fig


def save_chart(report: Report, path: str | Path, lang: str = "vi") -> Path:
    """PNG or PDF by the file's extension."""
    path = Path(path)
    fig = build_figure(report, lang)
    pdf = path.suffix.lower() == ".pdf"
    # PDF: TrueType fonts embedded whole (type 42: text stays text, Vietnamese searchable),
    # and a title and author for the reader's window and the file's properties
    meta = {"Title": f"{word('pdf.title', lang)} – {when_text(report, lang)}", "Author": report.center} if pdf else None
    import matplotlib as mpl
    with mpl.rc_context({"pdf.fonttype": 42, "font.family": FONT}):
        fig.savefig(path, dpi=None if pdf else 150, metadata=meta)
    return path


def _header(fig: Figure, report: Report, lang: str, generated: dt.datetime) -> None:
    when = when_text(report, lang)
    fig.text(0.08, 0.965, word("title", lang), fontsize=17, fontweight="bold", color=BLUE)
    fig.text(0.08, 0.943, report.center, fontsize=11)
    fig.text(0.08, 0.925, f"{when}  ·  {word('points', lang)}: {', '.join(report.points)}", fontsize=9)
    t = report.total
    kpis = [
        (word("kpi.issued", lang), str(t.issued)),
        (word("kpi.served", lang), str(t.served)),
        (word("kpi.wait", lang), "–" if t.wait_median_min is None
         else f"{num(t.wait_median_min, lang)} {word('minutes', lang)}"),
        (word("kpi.within", lang, report.target_wait_minutes),
         "–" if t.within_target_pct is None else f"{num(t.within_target_pct, lang)}%"),
        (word("kpi.satisfied", lang), _satisfied(report)),
        (word("kpi.priority", lang), str(t.priority_served)),
    ]
    for i, (name, value) in enumerate(kpis):
        x = 0.08 + i * 0.152
        fig.text(x, 0.872, value, fontsize=15, fontweight="bold", color=BLUE)
        fig.text(x, 0.862, textwrap.fill(name, 20), fontsize=7.5, color="#333333", va="top")
    longest = "–" if t.wait_max_min is None else f"{num(t.wait_max_min, lang)} {word('minutes', lang)}"
    more = [(word("kpi.transferred", lang), str(t.transferred)), (word("kpi.no_show", lang), str(t.no_show)),
            (word("kpi.longest", lang), longest)]
    fig.text(0.08, 0.828, "   ·   ".join(f"{k}: {v}" for k, v in more), fontsize=9, color="#333333")
    fig.text(0.97, 0.965, word("generated", lang, generated.strftime("%d/%m/%Y %H:%M")), fontsize=7,
             color=GREY, ha="right")


def _satisfied(report: Report) -> str:
    t = report.total
    if not t.ratings:
        return "–"
    n = sum(t.rating_count(k) for k in satisfied_levels(report.rating_levels))
    return f"{100 * n / t.ratings:.0f}%"


def _arrivals(ax, report: Report, lang: str) -> None:
    _style(ax, word("chart.arrivals", lang))
    hours = report.section("hour")
    if not any(h.issued or h.served for h in hours):
        return _no_data(ax, word("no_data", lang))
    xs = [int(h.key) for h in hours]
    ax.bar(xs, [h.issued for h in hours], color=BLUE, label=word("legend.issued", lang))
    ax.plot(xs, [h.served for h in hours], color=ORANGE, marker="o", ms=3,
            label=word("legend.served", lang))
    _hour_ticks(ax, xs)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))     # people come whole
    _legend_below(ax)


def _hour_ticks(ax, xs: list[int]) -> None:
    """Hour labels that never pile up: every hour up to 12 of them, else every 2nd or 3rd."""
    step = 1 if len(xs) <= 12 else (2 if len(xs) <= 18 else 3)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x}h" if i % step == 0 else "" for i, x in enumerate(xs)])


def _legend_below(ax, ncol: int = 3) -> None:
    """Under the axes, where it covers no bar."""
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=ncol)


def _waits_by_hour(ax, report: Report, lang: str) -> None:
    _style(ax, word("chart.waits_by_hour", lang))
    hours = [h for h in report.section("hour") if h.wait_median_min is not None]
    if not hours:
        return _no_data(ax, word("no_data", lang))
    xs = [int(h.key) for h in hours]
    ax.plot(xs, [h.wait_median_min for h in hours], color=BLUE, marker="o", ms=3,
            label=word("legend.median", lang))
    ax.plot(xs, [h.wait_p90_min for h in hours], color=ORANGE, marker="s", ms=3,
            label=word("legend.p90", lang))
    ax.axhline(report.target_wait_minutes, color=RED, lw=1, ls="--",
               label=word("legend.target", lang, report.target_wait_minutes))
    _hour_ticks(ax, xs)
    ax.set_ylim(bottom=0)
    _legend_below(ax, ncol=2)


def _service_waits(ax, report: Report, lang: str) -> None:
    _style(ax, word("chart.service_waits", lang), page_x=0.08)
    rows = [s for s in report.section("service") if s.wait_median_min is not None]
    if not rows:
        return _no_data(ax, word("no_data", lang))
    # whole names, on two lines when long (a cut name can be another service's)
    names = [textwrap.fill(label(s, lang) + f" ({s.issued})", 50) for s in rows]
    ys = list(range(len(rows)))[::-1]
    ax.barh(ys, [s.wait_p90_min for s in rows], color="#f6c28b", label=word("legend.p90", lang))
    ax.barh(ys, [s.wait_median_min for s in rows], color=BLUE, height=0.45,
            label=word("legend.median", lang))
    ax.axvline(report.target_wait_minutes, color=RED, lw=1, ls="--",
               label=word("legend.target", lang, report.target_wait_minutes))
    ax.set_yticks(ys, names, fontsize=7.5)
    _legend_below(ax)


def _ratings(ax, report: Report, lang: str) -> None:
    _style(ax, word("chart.ratings", lang), page_x=0.08)
    t, n = report.total, report.rating_levels
    if not t.ratings:
        return _no_data(ax, word("no_ratings", lang))
    levels = list(range(n, 0, -1))          # most satisfied on top
    counts = [t.rating_count(k) for k in levels]
    ys = list(range(len(levels)))[::-1]
    ax.barh(ys, counts, color=[RATING_COLORS.get(n, RATING_COLORS[4])[k - 1] for k in levels])
    ax.set_yticks(ys, [rating_label(k, n, lang) for k in levels], fontsize=8)
    for y, k, c in zip(ys, levels, counts):
        ax.text(c, y, f" {c} ({num(t.rating_share_pct(k), lang)}%)", va="center", fontsize=8)
    ax.set_xlim(0, max(counts) * 1.45 + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _counters(ax, report: Report, lang: str) -> None:
    """Served per counter, with the median service time on each bar."""
    _style(ax, word("chart.counters", lang), page_x=0.55)
    rows = report.section("counter")
    if not any(c.served for c in rows):
        return _no_data(ax, word("no_data", lang))
    ys = list(range(len(rows)))[::-1]
    ax.barh(ys, [c.served for c in rows], color=GREEN)
    ax.set_yticks(ys, [_short(label(c, lang), 24) for c in rows], fontsize=8)
    for y, c in zip(ys, rows):
        if c.service_median_min is not None:
            ax.text(c.served, y, f" {c.served} · {num(c.service_median_min, lang)} {word('minutes', lang)}",
                    va="center", fontsize=7.5)
    ax.set_xlim(0, max(c.served for c in rows) * 1.6 + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
