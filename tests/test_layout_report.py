"""Layout suite, report: the one-page A4 report of a simulated ward day. Every text stays on
the page, no legend covers a bar or a line, no two tick labels of an axis overlap (hour
labels of a center open all day), and the page is kept in docs/screens/ (docs/reports.md)."""
from __future__ import annotations

import datetime as dt

from support.layout import keep_png
from support.site import TEST_CONFIG

from qms.config.site import load_config
from qms.reports.chart import build_figure, save_chart
from qms.reports.stats import Point, build_report
from qms.sim.simulate import DayProfile, simulate

DAY = dt.date(2026, 11, 24)


def _report(tmp_path, open_all_day: bool = False):
    text = TEST_CONFIG.read_text(encoding="utf-8").replace('state_dir = "../var"', f'state_dir = "{tmp_path}"')
    if open_all_day:
        text = text.replace('open = "07:30"', 'open = "00:00"').replace('close = "17:00"', 'close = "23:59"')
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    cfg = load_config(path)
    profile = DayProfile(tickets=320)
    if open_all_day:
        profile.arrivals_by_hour = {h: 1.0 for h in range(24)}
    simulate(cfg, tmp_path / "day.sqlite", [DAY], profile, seed=7)
    return build_report([Point(cfg, tmp_path / "day.sqlite")], DAY.isoformat(), DAY.isoformat())


def _check(fig) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = fig.bbox
    out = []
    ticks = {id(lb) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for lb in axis.get_ticklabels() + axis.get_ticklabels(minor=True)}
    for t in fig.findobj(Text):
        if not t.get_text() or not t.get_visible() or id(t) in ticks:
            continue
        box = t.get_window_extent(renderer)
        if box.x0 < page.x0 - 1 or box.x1 > page.x1 + 1 or box.y0 < page.y0 - 1 or box.y1 > page.y1 + 1:
            out.append(f"{t.get_text()[:40]!r} leaves the page")
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            lbox = legend.get_window_extent(renderer)
            for artist in [*ax.patches, *ax.lines]:
                if artist.get_window_extent(renderer).overlaps(lbox) and artist.get_label() not in ("_nolegend_",):
                    out.append(f"the legend of {ax.texts[0].get_text() if ax.texts else ax} covers a bar or line")
                    break
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            shown = [(loc, lb) for loc, lb in zip(axis.get_majorticklocs(), axis.get_ticklabels())
                     if lb.get_text() and lo - 1e-9 <= loc <= hi + 1e-9]      # drawn: inside the axis
            labels = [lb.get_window_extent(renderer) for _, lb in shown]
            for box, (_, lb) in zip(labels, shown):
                if box.x0 < page.x0 - 1 or box.x1 > page.x1 + 1:
                    out.append(f"tick label {lb.get_text()!r} leaves the page")
            for a, b in zip(labels, labels[1:]):
                if a.overlaps(b):
                    out.append(f"tick labels overlap in {ax.texts[0].get_text() if ax.texts else ax}")
                    break
    return out


def test_the_report_page_holds_its_texts(tmp_path):
    report = _report(tmp_path)
    assert _check(build_figure(report, "vi")) == []
    assert _check(build_figure(report, "en")) == []
    keep_png(save_chart(report, tmp_path / "report.png", "vi"), "report")


def test_a_center_open_all_day_gets_readable_hour_labels(tmp_path):
    report = _report(tmp_path, open_all_day=True)
    assert len(report.section("hour")) > 18
    assert _check(build_figure(report, "vi")) == []
