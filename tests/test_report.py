"""Reports of simulated days, checked against figures recomputed here from the raw events."""
from __future__ import annotations

import datetime as dt
import math
import statistics
import unicodedata
import warnings
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from support.site import TEST_CONFIG

from qms.config.site import load_config, parse_config
from qms.reports.chart import build_figure, save_chart
from qms.reports.render import read_csv, render_table, write_csv
from qms.reports.stats import Point, build_report
from qms.service.store import EventStore
from qms.sim.simulate import DayProfile, simulate

DAY = dt.date(2026, 11, 24)          # a Tuesday
TARGET = 30


def _config(tmp: Path, extra: str = "", site_id: str | None = None, name: str | None = None):
    text = TEST_CONFIG.read_text(encoding="utf-8")
    if site_id:
        text = text.replace('id = "phuong-an-khanh"', f'id = "{site_id}"')
    if name:
        text = text.replace('name = "Điểm tiếp nhận chính"', f'name = "{name}"')
    path = tmp / f"{site_id or 'main'}.toml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """One simulated day at the example ward: (config, event log)."""
    tmp = tmp_path_factory.mktemp("day")
    cfg = _config(tmp)
    db = tmp / "main.sqlite"
    simulate(cfg, db, [DAY], DayProfile(tickets=320), seed=7)
    return cfg, db


# ---------------------------------------------------------------- independent figures
def _p90(values):
    s = sorted(values)
    return s[math.ceil(0.9 * len(s)) - 1]


def _raw(db: Path):
    """Per-ticket facts from the raw events, decoded with the service's own message classes."""
    store = EventStore(db)
    events = list(store.events(day=DAY.isoformat()))
    store.close()
    tickets, refused, ratings = {}, Counter(), Counter()
    for e in events:
        kind = e.__struct_config__.tag
        if kind == "ticket.issued":
            tickets[e.ticket_id] = {"service": e.service, "prio": e.priority, "issued": e.issued_at,
                                    "calls": [], "end": None, "cur": e.service}
        elif kind == "ticket.called":
            tickets[e.ticket_id]["calls"].append((e.at, e.counter, e.service))
            tickets[e.ticket_id]["end"] = None
        elif kind in ("ticket.done", "ticket.no_show"):
            tickets[e.ticket_id]["end"] = (kind, e.at, e.counter)
        elif kind == "ticket.transferred":
            tickets[e.ticket_id]["end"] = ("transferred", e.at, e.from_counter)
        elif kind == "ticket.refused":
            refused[(e.service, e.reason)] += 1
        elif kind == "rating.submitted":
            ratings[(e.service, e.level)] += 1
    return events, tickets, refused, ratings


def _minutes(ms):
    return round(ms / 60_000, 1)


def test_report_matches_figures_computed_from_raw_events(day):
    cfg, db = day
    report = build_report([Point(cfg, db)], DAY.isoformat(), DAY.isoformat())
    events, tickets, refused, ratings = _raw(db)
    assert len(tickets) > 250 and report.total.issued == len(tickets)

    by_service = {r.key: r for r in report.section("service")}
    for s in cfg.services:
        mine = [t for t in tickets.values() if t["service"] == s.id]
        waits = [t["calls"][0][0] - t["issued"] for t in mine if t["calls"]]
        r = by_service[s.id]
        assert r.issued == len(mine)
        assert r.not_called == sum(1 for t in mine if not t["calls"])
        if waits:
            assert r.wait_median_min == _minutes(statistics.median(waits))
            assert r.wait_p90_min == _minutes(_p90(waits))
            assert r.wait_max_min == _minutes(max(waits))
            assert r.within_target_pct == round(100 * sum(w <= TARGET * 60_000 for w in waits) / len(waits), 1)
        done = [t for t in tickets.values() if t["end"] and t["end"][0] == "ticket.done"
                and t["calls"][-1][2] == s.id]
        assert r.served == len(done)
        if done:
            times = [t["end"][1] - t["calls"][-1][0] for t in done]
            assert r.service_median_min == _minutes(statistics.median(times))
            assert r.service_p90_min == _minutes(_p90(times))
        assert r.priority_served == sum(1 for t in done if t["prio"])
        assert r.no_show == sum(1 for t in tickets.values() if t["end"] and t["end"][0] == "ticket.no_show"
                                and t["calls"][-1][2] == s.id)
        for level in range(1, 5):
            assert r.rating_count(level) == ratings[(s.id, level)]

    by_counter = {r.key: r for r in report.section("counter")}
    served_at = Counter(t["end"][2] for t in tickets.values() if t["end"] and t["end"][0] == "ticket.done")
    for c in cfg.counters:
        assert by_counter[str(c.number)].served == served_at[c.number]
    transfers = Counter(e.from_counter for e in events if e.__struct_config__.tag == "ticket.transferred")
    assert sum(transfers.values()) == report.total.transferred > 0
    for n, k in transfers.items():
        assert by_counter[str(n)].transferred == k

    t = report.total
    assert t.served == sum(served_at.values())
    assert t.ratings == sum(ratings.values()) > 0
    assert t.refused_cutoff == sum(v for (_, why), v in refused.items() if why == "past_cutoff")
    assert t.refused_cap == sum(v for (_, why), v in refused.items() if why == "daily_cap")
    assert t.no_show > 0 and t.priority_served > 0

    issued_by_hour = Counter(dt.datetime.fromtimestamp(x["issued"] / 1000, cfg.tz).hour for x in tickets.values())
    hours = {int(r.key): r for r in report.section("hour")}
    for h, n in issued_by_hour.items():
        assert hours[h].issued == n
    assert sum(r.issued for r in hours.values()) == t.issued


def test_csv_round_trip_keeps_every_figure(day, tmp_path):
    cfg, db = day
    report = build_report([Point(cfg, db)], DAY.isoformat(), DAY.isoformat())
    path = tmp_path / "day.csv"
    write_csv(report, path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")      # BOM: spreadsheets read UTF-8
    back = read_csv(path)
    assert back == report.rows
    assert any(r.label_vi == "Chứng thực (sao y, chứng thực chữ ký)" for r in back)


def _texts(fig) -> list[str]:
    from matplotlib.text import Text
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _check_png(path: Path) -> None:
    img = Image.open(path).convert("L")
    assert img.size == (1240, 1754) or img.size == (1240, 1753)
    hist = img.histogram()
    non_white = sum(hist[:250])
    assert non_white > 0.05 * img.size[0] * img.size[1]      # a page of charts, not a blank one


def test_chart_page_has_vietnamese_labels_and_no_empty_chart(day, artifacts):
    cfg, db = day
    report = build_report([Point(cfg, db)], DAY.isoformat(), DAY.isoformat())
    fig = build_figure(report, "vi")
    texts = _texts(fig)
    for expected in ["BÁO CÁO TÌNH HÌNH PHỤC VỤ", "Thời gian chờ theo lĩnh vực (phút)",
                     "Lượt lấy số và phục vụ theo giờ", "Đánh giá mức độ hài lòng", "Rất hài lòng",
                     "Không hài lòng", "Trung tâm Phục vụ hành chính công phường An Khánh"]:
        assert expected in texts, expected
    assert any(t.startswith("Chứng thực (sao y, chứng thực chữ ký)") for t in texts)
    assert any(t.startswith("Ngày 24/11/2026") for t in texts)
    assert all(unicodedata.is_normalized("NFC", t) for t in texts)
    assert "Không có dữ liệu" not in texts and "Chưa có đánh giá" not in texts
    for ax in fig.axes:                                  # every chart draws something
        assert ax.patches or ax.lines, ax
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # a missing glyph warns: fail on it
        save_chart(report, artifacts / "report-day.png", "vi")
        save_chart(report, artifacts / "report-day-en.png", "en")
        save_chart(report, artifacts / "report-day.pdf", "vi")
    _check_png(artifacts / "report-day.png")
    assert (artifacts / "report-day.pdf").read_bytes().startswith(b"%PDF")
    assert "Satisfaction ratings" in _texts(build_figure(report, "en"))


def test_table_in_both_languages(day):
    cfg, db = day
    report = build_report([Point(cfg, db)], DAY.isoformat(), DAY.isoformat())
    vi = render_table(report, "vi")
    en = render_table(report, "en")
    assert "Theo lĩnh vực" in vi and "Hộ tịch (khai sinh, kết hôn, khai tử)" in vi and "Quầy 3" in vi
    assert "By service" in en and "Civil status (birth, marriage, death)" in en and "Counter 3" in en
    assert f"{report.total.issued}" in vi


def test_day_with_zero_tickets(tmp_path, artifacts):
    cfg = _config(tmp_path)
    db = tmp_path / "empty.sqlite"
    EventStore(db).close()
    report = build_report([Point(cfg, db)], DAY.isoformat(), DAY.isoformat())
    t = report.total
    assert (t.issued, t.served, t.ratings, t.wait_median_min, t.within_target_pct) == (0, 0, 0, None, None)
    assert len(report.section("service")) == len(cfg.services)
    assert "Tổng cộng" in render_table(report)
    write_csv(report, tmp_path / "empty.csv")
    assert read_csv(tmp_path / "empty.csv") == report.rows
    fig = build_figure(report)
    assert _texts(fig).count("Không có dữ liệu") == 4 and "Chưa có đánh giá" in _texts(fig)
    save_chart(report, artifacts / "report-empty.png")
    _check_png_blank_ok(artifacts / "report-empty.png")


def _check_png_blank_ok(path: Path) -> None:
    assert Image.open(path).size[0] == 1240


def test_service_without_counters(tmp_path):
    extra = ('[[services]]\nid = "cu-tru"\ncode = 8\nname_vi = "Cư trú"\nname_en = "Residence"\n'
             'avg_service_minutes = 6\n')
    cfg = _config(tmp_path, extra)
    db = tmp_path / "cu-tru.sqlite"
    mix = {"chung-thuc": 0.6, "cu-tru": 0.2, "nhan-ket-qua": 0.2}
    result = simulate(cfg, db, [DAY], DayProfile(tickets=120, mix=mix), seed=3)
    assert result["issued"] > 100
    report = build_report([Point(cfg, db)], DAY.isoformat(), DAY.isoformat())
    row = next(r for r in report.section("service") if r.key == "cu-tru")
    assert row.issued > 0 and row.not_called == row.issued and row.served == 0
    assert row.wait_median_min is None and row.label_vi == "Cư trú"
    assert report.total.not_called == row.issued
    assert "Cư trú" in render_table(report)
    build_figure(report)                                # draws without it


def test_whole_center_with_a_point_without_ratings(tmp_path, artifacts):
    main = _config(tmp_path)
    sub = _config(tmp_path, site_id="an-khanh-dao", name="Điểm tiếp nhận Cồn Đảo")
    main_db, sub_db = tmp_path / "main.sqlite", tmp_path / "sub.sqlite"
    simulate(main, main_db, [DAY], DayProfile(tickets=150), seed=1)
    simulate(sub, sub_db, [DAY], DayProfile(tickets=60, rated=False), seed=2)
    report = build_report([Point(main, main_db), Point(sub, sub_db)], DAY.isoformat(), DAY.isoformat())
    points = {r.key: r for r in report.section("point")}
    assert points["an-khanh-dao"].ratings == 0 and points["an-khanh-dao"].rating_mean is None
    assert points["phuong-an-khanh"].ratings > 0
    assert points["an-khanh-dao"].issued + points["phuong-an-khanh"].issued == report.total.issued
    counters = {r.key for r in report.section("counter")}
    assert "an-khanh-dao:1" in counters and "phuong-an-khanh:1" in counters
    assert any(r.label_vi.startswith("Điểm tiếp nhận Cồn Đảo · Quầy") for r in report.section("counter"))
    only_sub = build_report([Point(sub, sub_db)], DAY.isoformat(), DAY.isoformat())
    assert only_sub.total.ratings == 0 and only_sub.total.served > 0
    fig = build_figure(only_sub)
    assert "Chưa có đánh giá" in _texts(fig)
    save_chart(report, artifacts / "report-center.png")
    _check_png(artifacts / "report-center.png")


def test_date_range_has_a_row_per_day(tmp_path):
    cfg = _config(tmp_path)
    db = tmp_path / "range.sqlite"
    days = [DAY, DAY + dt.timedelta(days=1)]
    simulate(cfg, db, days, DayProfile(tickets=80), seed=5)
    report = build_report([Point(cfg, db)], days[0].isoformat(), days[1].isoformat())
    per_day = {r.key: r for r in report.section("day")}
    assert set(per_day) == {d.isoformat() for d in days}
    assert sum(r.issued for r in per_day.values()) == report.total.issued
    one = build_report([Point(cfg, db)], days[1].isoformat(), days[1].isoformat())
    assert one.total.issued == per_day[days[1].isoformat()].issued
    assert "Từ ngày 24/11/2026 đến ngày 25/11/2026" in render_table(report)


def test_cli_writes_every_output_and_refuses_bad_input(day, tmp_path, capsys):
    from qms.cli.main import main
    cfg, db = day
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["report", "-c", cfg.source, "--db", str(db), "--day", DAY.isoformat(), "--csv",
               str(out / "r.csv"), "--png", str(out / "r.png"), "--lang", "en", "--target-wait", "15"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "SERVICE REPORT" in text and "Wait ≤15′" in text
    assert read_csv(out / "r.csv")[0].issued > 0
    _check_png(out / "r.png")
    for bad, why in [(["--day", "2026-13-01"], "month"), (["--from", "2026-11-25", "--to", "2026-11-24"], "before"),
                     (["--db", str(tmp_path / "none.sqlite")], "no event log")]:
        args = ["report", "-c", cfg.source, "--db", str(db), "--day", DAY.isoformat()]
        if bad[0] == "--db":
            args[4] = bad[1]
        else:
            args = args[:5] + bad
        assert main(args) == 2
        assert why in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    assert main(["report", "-c", cfg.source, "--db", str(tmp_path / "junk.sqlite"), "--day", DAY.isoformat()]) == 2
    assert "not a readable event log" in capsys.readouterr().err


def test_center_points_from_the_config(tmp_path):
    sub = _config(tmp_path, site_id="diem-phu", name="Điểm phụ")
    sub_db = tmp_path / "sub.sqlite"
    simulate(sub, sub_db, [DAY], DayProfile(tickets=40), seed=4)
    main = _config(tmp_path, extra='[report]\ntarget_wait_minutes = 20\n[[report.points]]\nconfig = "diem-phu.toml"\n'
                                   'db = "sub.sqlite"\n')
    main_db = tmp_path / "main.sqlite"
    simulate(main, main_db, [DAY], DayProfile(tickets=40), seed=5)
    from qms.cli.main import main as cli
    assert cli(["report", "-c", main.source, "--db", str(main_db), "--day", DAY.isoformat(), "--center",
                "--csv", str(tmp_path / "c.csv"), "-q"]) == 0
    rows = read_csv(tmp_path / "c.csv")
    assert {r.key for r in rows if r.section == "point"} == {"phuong-an-khanh", "diem-phu"}
    assert parse_config(TEST_CONFIG.read_text(encoding="utf-8")).report.target_wait_minutes == 30


def test_chart_in_site_time_with_decimal_commas_headline_and_embedded_truetype_fonts(day, tmp_path):
    import re
    import zlib

    from matplotlib.ticker import MaxNLocator
    cfg, db = day
    report = build_report([Point(cfg, db)], DAY.isoformat(), DAY.isoformat())
    assert report.timezone == "Asia/Ho_Chi_Minh"
    fig = build_figure(report, "vi")
    texts = _texts(fig)
    stamp = next(t for t in texts if t.startswith("Lập lúc"))
    now_site = dt.datetime.now(cfg.tz)
    assert now_site.strftime("%d/%m/%Y %H:") in stamp or (now_site - dt.timedelta(minutes=1)).strftime("%H:") in stamp
    decimals = [t for t in texts if re.search(r"\d[.,]\d", t) and "/" not in t]
    assert decimals and not any(re.search(r"\d\.\d", t) for t in decimals), decimals
    headline = next(t for t in texts if "Chuyển lĩnh vực/quầy" in t)
    assert f": {report.total.transferred}" in headline and "Vắng mặt khi gọi" in headline and "Chờ lâu nhất" in headline
    arrivals = fig.axes[0]
    assert isinstance(arrivals.yaxis.get_major_locator(), MaxNLocator)
    for ax in fig.axes:                 # legends sit under their axes, over no bar
        if ax.get_legend() is not None:
            assert ax.get_legend().get_bbox_to_anchor().y0 < ax.get_window_extent().y0 + 1
    pdf = save_chart(report, tmp_path / "r.pdf", "vi").read_bytes()
    raw = pdf + b"".join(zlib.decompress(m) for m in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S)
                         if _inflates(m))
    assert b"/Type3" not in raw and (b"/TrueType" in raw or b"/CIDFontType2" in raw)
    assert b"/Title" in raw


def _inflates(data: bytes) -> bool:
    import zlib
    try:
        zlib.decompress(data)
        return True
    except zlib.error:
        return False


def test_charts_without_matplotlib_say_which_extra_to_install(day, tmp_path, capsys, monkeypatch):
    """matplotlib is the `reports` extra: a machine without it still gets the table, and a
    chart request says what to install instead of a traceback."""
    import sys

    from qms.cli.main import main
    monkeypatch.setitem(sys.modules, "matplotlib", None)        # import matplotlib -> ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "qms.reports.chart", raising=False)
    cfg, db = day
    base = ["report", "-c", cfg.source, "--db", str(db), "--day", DAY.isoformat()]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base + ["--png", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert "qms-edge[reports]" in err and "Traceback" not in err
    assert not (tmp_path / "r.png").exists()
