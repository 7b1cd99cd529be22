"""A report as a terminal table and as CSV (and back, so a CSV can be checked)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import msgspec

from qms.reports.labels import label, num, rating_label, when_text, word
from qms.reports.stats import Figures, Report

# ---------------------------------------------------------------- terminal table


def _num(v, lang: str = "vi") -> str:
    return num(v, lang)


def _triple(*vs, lang: str = "vi") -> str:
    return "/".join(_num(v, lang) for v in vs)


def _if(applies: bool, v: int) -> str:
    return str(v) if applies else "–"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}%"


def _grid(rows: list[list[str]]) -> list[str]:
    """Left-align the first column, right-align the others."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(cells).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def _figures_table(rows: list[Figures], report: Report, lang: str) -> list[str]:
    head = ["", word("col.issued", lang), word("col.served", lang), word("col.no_show", lang),
            word("col.transferred", lang), word("col.refused", lang), word("col.not_called", lang),
            word("col.wait", lang), word("col.within", lang, report.target_wait_minutes),
            word("col.service_time", lang), word("col.ratings", lang), word("col.rating_mean", lang),
            word("col.priority", lang)]
    arrival_side = rows[0].section != "counter"     # a counter does not issue tickets
    body = [[label(f, lang)[:44], _if(arrival_side, f.issued), str(f.served), str(f.no_show),
             str(f.transferred), _if(arrival_side, f.refused), _if(arrival_side, f.not_called),
             _triple(f.wait_median_min, f.wait_p90_min, f.wait_max_min, lang=lang), _pct(f.within_target_pct),
             _triple(f.service_median_min, f.service_p90_min, lang=lang), str(f.ratings), _num(f.rating_mean, lang),
             str(f.priority_served)] for f in rows]
    return _grid([head] + body)


def _ratings_table(rows: list[Figures], report: Report, lang: str) -> list[str]:
    levels = range(1, report.rating_levels + 1)
    head = [""] + [rating_label(k, report.rating_levels, lang) for k in levels] + [word("col.ratings", lang)]
    body = [[label(f, lang)[:44]] + [f"{f.rating_count(k)} ({_pct(f.rating_share_pct(k))})" for k in levels]
            + [str(f.ratings)] for f in rows]
    return _grid([head] + body)


def render_table(report: Report, lang: str = "vi") -> str:
    when = when_text(report, lang)
    t = report.total
    lines = [word("title", lang), report.center, f"{word('points', lang)}: {', '.join(report.points)}",
             when, f"({word('minutes', lang)})", ""]
    for section in ("total", "point", "service", "counter", "hour", "day"):
        rows = report.section(section)
        if not rows:
            continue
        lines += [word(f"section.{section}", lang), *_figures_table(rows, report, lang), ""]
    lines += [word("section.ratings", lang),
              *_ratings_table([t] + report.section("service") + report.section("counter"), report, lang), ""]
    lines.append(word("refused_detail", lang, t.refused_cap, t.refused_cutoff, t.refused_other))
    lines.append(word("print_failed", lang, t.print_failed))
    if report.skipped_events:
        lines.append(word("skipped", lang, report.skipped_events))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- CSV
FIELDS = list(Figures.__struct_fields__)
_INT_FIELDS = {f for f, t in zip(Figures.__struct_fields__, msgspec.structs.fields(Figures))
               if t.type is int}


def _share_columns(levels: int) -> list[str]:
    return [f"rating_{k}_pct" for k in range(1, levels + 1)]


def to_csv(report: Report, lang: str = "vi") -> str:
    """One row per figure row: machine-readable English column names, both labels, and the
    share per rating level. Written with a BOM by `write_csv` so spreadsheets read the
    Vietnamese right."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    shares = _share_columns(report.rating_levels)
    w.writerow(FIELDS + shares + ["since", "until", "target_wait_minutes"])
    for f in report.rows:
        values = ["" if v is None else v for v in (getattr(f, k) for k in FIELDS)]
        pct = [_blank(f.rating_share_pct(k)) for k in range(1, report.rating_levels + 1)]
        w.writerow(values + pct + [report.since, report.until, report.target_wait_minutes])
    return buf.getvalue()


def _blank(v) -> str | float:
    return "" if v is None else v


def write_csv(report: Report, path: str | Path, lang: str = "vi") -> None:
    Path(path).write_text(to_csv(report, lang), encoding="utf-8-sig")


def read_csv(path: str | Path) -> list[Figures]:
    """The figure rows of a CSV written by `write_csv`."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        out = []
        for rec in csv.DictReader(fh):
            values = {}
            for k in FIELDS:
                v = rec[k]
                if k in ("section", "key", "label_vi", "label_en"):
                    values[k] = v
                elif v == "":
                    values[k] = None
                else:
                    values[k] = int(v) if k in _INT_FIELDS else float(v)
            out.append(Figures(**values))
        return out
