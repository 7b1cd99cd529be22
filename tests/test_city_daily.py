"""The city's reports from per-(site, day) aggregates (qms/city/daily.py) are the reports
folded from the raw events: for a point, a center and the city, over days in different time
zones, with late events, a day still taking events, and an aggregator killed mid-way."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path

import msgspec
import psycopg
from support import postgres
from support.postgres import CityServer, point_rows
from support.site import make_config
from support.wait import wait_until

from qms.city.daily import aggregate, fold_batch
from qms.city.db import add_site
from qms.city.report import city_report
from qms.config.site import load_config, parse_config
from qms.reports.log import Row
from qms.reports.stats import Point, build_report
from qms.sim.simulate import DayProfile, DaySimulation

pg_cluster, city_dsn = postgres.pg_cluster, postgres.city_dsn     # fixtures
CENTER_A = "Trung tâm Phục vụ hành chính công phường An Khánh"
CENTER_B = "Trung tâm Phục vụ hành chính công phường Bình Trưng"
D0 = dt.date(2026, 11, 23)
_rows = msgspec.json.Decoder(list[Row])


class Site:
    """A point's config and log, its events stored at the center straight into city_events
    (what the ingest does, without HTTP: these tests are about what comes after)."""

    def __init__(self, tmp_path: Path, dsn: str, site: str, center: str, tz: str):
        d = tmp_path / site
        d.mkdir()
        text = make_config(d, 1883, hours_all_day=False).read_text(encoding="utf-8")
        self.text = (text.replace('id = "phuong-an-khanh"', f'id = "{site}"')
                     .replace('center = "Trung tâm Phục vụ hành chính công phường An Khánh"', f'center = "{center}"')
                     .replace('timezone = "Asia/Ho_Chi_Minh"', f'timezone = "{tz}"'))
        (d / "site.toml").write_text(self.text, encoding="utf-8")
        self.cfg = load_config(d / "site.toml")
        assert self.cfg.site.timezone == tz
        self.db = self.cfg.state_dir() / "service.sqlite"
        self.site, self.dsn = site, dsn
        add_site(dsn, site, center)
        self.set_config(self.text)
        self.shipped = 0

    def set_config(self, text: str) -> None:
        self.cfg = parse_config(text)
        with psycopg.connect(self.dsn) as conn:
            conn.execute("UPDATE city_sites SET config = %s, name = %s WHERE site = %s",
                         (text, self.cfg.site.name, self.site))

    def play(self, day: dt.date, seed: int) -> None:
        DaySimulation(self.cfg, self.db, day, DayProfile(tickets=150), seed=seed).run().close()

    def ship(self, upto: int | None = None, conn: psycopg.Connection | None = None) -> int:
        """Store the log's events after the last shipped, up to seq `upto` (in `conn`'s open
        transaction if given); returns how many."""
        rows = [r for r in point_rows(self.db) if r[0] > self.shipped and (upto is None or r[0] <= upto)]
        if rows:
            with contextlib.nullcontext(conn) if conn else psycopg.connect(self.dsn) as conn:
                conn.execute("INSERT INTO city_events (site, seq, day, at, type, data) "
                             "SELECT %s, * FROM unnest(%s::bigint[], %s::date[], %s::bigint[], %s::text[], %s::bytea[])",
                             (self.site, *map(list, zip(*rows))))
                conn.execute("UPDATE city_sites SET stored_seq = %s WHERE site = %s", (rows[-1][0], self.site))
            self.shipped = rows[-1][0]
        return len(rows)

    def seqs_of(self, day: dt.date) -> list[int]:
        return [r[0] for r in point_rows(self.db) if r[1] == day.isoformat()]

    def point(self) -> Point:
        """The raw fold's view of this point: the events shipped so far, read as `qms report` does."""
        shipped = [r for r in point_rows(self.db) if r[0] <= self.shipped]

        def rows(since: str, until: str):
            data = [r[4] for r in shipped if since <= r[1] <= until]
            return (_rows.decode(b"[" + b",".join(data) + b"]") if data else []), 0
        return Point(self.cfg, self.db, rows=rows)


def same(central, sites: list[Site], since: dt.date, until: dt.date) -> bool:
    own = build_report([s.point() for s in sites], since.isoformat(), until.isoformat())
    return msgspec.to_builtins(central.rows) == msgspec.to_builtins(own.rows)


def dirty(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM city_days_dirty").fetchone()[0]


def daily_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM city_daily").fetchone()[0]


def three_sites(tmp_path, dsn) -> list[Site]:
    # city_report lists points by center, then site: so do these lists
    return [Site(tmp_path, dsn, "an-khanh-1", CENTER_A, "Asia/Ho_Chi_Minh"),
            Site(tmp_path, dsn, "an-khanh-2", CENTER_A, "Asia/Tokyo"),
            Site(tmp_path, dsn, "binh-trung-1", CENTER_B, "UTC")]


def test_aggregates_give_the_raw_fold_for_a_point_a_center_and_the_city(tmp_path, city_dsn):
    sites = three_sites(tmp_path, city_dsn)
    days = [D0 + dt.timedelta(days=i) for i in range(3)]
    for i, s in enumerate(sites):
        for k, day in enumerate(days):
            s.play(day, seed=10 * i + k)
        s.ship()
    a1, a2, b1 = sites
    assert dirty(city_dsn) == 9                      # the insert trigger marked every site-day
    stats = aggregate(city_dsn)
    assert stats["folded"] == stats["cleared"] == 9
    assert dirty(city_dsn) == 0 and daily_rows(city_dsn) == 9

    def check_all() -> None:
        first, last = days[0].isoformat(), days[-1].isoformat()
        for s in sites:
            assert same(city_report(city_dsn, first, last, site=s.site), [s], days[0], days[-1])
        assert same(city_report(city_dsn, first, last, center=CENTER_A), [a1, a2], days[0], days[-1])
        rep = city_report(city_dsn, first, last)
        assert rep.center == "Toàn thành phố" and same(rep, sites, days[0], days[-1])
        assert rep.total.issued > 9 * 100 and rep.total.wait_median_min is not None
        assert {r.key for r in rep.section("counter")} >= {"an-khanh-1:1", "binh-trung-1:6"}
        one = days[1].isoformat()
        assert same(city_report(city_dsn, one, one), sites, days[1], days[1])

    check_all()
    # a point's zone changed: its rows (hours in the old zone) are not used, its events are
    b1.set_config(b1.text.replace('timezone = "UTC"', 'timezone = "Asia/Ho_Chi_Minh"'))
    check_all()
    assert aggregate(city_dsn)["folded"] == 3       # folded again in the new zone
    # the report reads the aggregates alone: without a single event left, it is the same
    with psycopg.connect(city_dsn) as conn:
        conn.execute("ALTER TABLE city_events DISABLE TRIGGER USER")
        conn.execute("DELETE FROM city_events")
    check_all()


def test_late_events_and_a_day_still_taking_events(tmp_path, city_dsn):
    s = Site(tmp_path, city_dsn, "an-khanh-1", CENTER_A, "Asia/Ho_Chi_Minh")
    today = dt.date.today()
    d0, d1 = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    since, until = d0.isoformat(), today.isoformat()
    s.play(d0, seed=1)
    s.ship()
    aggregate(city_dsn)
    assert same(city_report(city_dsn, since, until), [s], d0, today)
    # offline for a day: d1 and the first part of today arrive late, at once
    s.play(d1, seed=2)
    s.play(today, seed=3)
    half = s.seqs_of(today)[len(s.seqs_of(today)) // 2]
    assert s.ship(upto=half) > 0
    assert dirty(city_dsn) == 2
    assert same(city_report(city_dsn, since, until), [s], d0, today)       # before any fold: events
    aggregate(city_dsn)
    assert dirty(city_dsn) == 0
    assert same(city_report(city_dsn, since, until), [s], d0, today)       # the folded rows
    # today goes on: right after more of its events are stored, none missed, none twice
    assert s.ship() > 0
    assert dirty(city_dsn) == 1
    rep = city_report(city_dsn, since, until)
    assert same(rep, [s], d0, today)
    assert rep.total.issued == build_report([Point(s.cfg, s.db)], since, until).total.issued
    aggregate(city_dsn)
    assert dirty(city_dsn) == 0 and same(city_report(city_dsn, since, until), [s], d0, today)


def test_events_stored_during_a_fold_leave_the_day_dirty(tmp_path, city_dsn):
    s = Site(tmp_path, city_dsn, "an-khanh-1", CENTER_A, "Asia/Ho_Chi_Minh")
    s.play(D0, seed=7)
    seqs = s.seqs_of(D0)
    s.ship(upto=seqs[len(seqs) // 2])
    day = D0.isoformat()
    # the fold has read the day and written its row; before it clears the mark, more events
    # of that day are stored (here: in the transaction that holds the mark)
    ingest = psycopg.connect(city_dsn)
    ingest.execute("SELECT 1 FROM city_days_dirty WHERE site = %s AND day = %s FOR UPDATE", (s.site, D0))
    folder = threading.Thread(target=aggregate, args=(city_dsn + "?application_name=racing-fold",))
    folder.start()
    try:
        with psycopg.connect(city_dsn, autocommit=True) as conn:
            assert wait_until(lambda: conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'racing-fold' "
                "AND wait_event_type = 'Lock'").fetchone()[0] == 1, 30)
        assert s.ship(conn=ingest) > 0
        ingest.commit()
    finally:
        ingest.close()
        folder.join(30)
    assert daily_rows(city_dsn) == 1 and dirty(city_dsn) == 1       # the row is of the first half only
    assert same(city_report(city_dsn, day, day), [s], D0, D0)
    aggregate(city_dsn)
    assert dirty(city_dsn) == 0 and same(city_report(city_dsn, day, day), [s], D0, D0)


def test_a_killed_aggregator_loses_nothing(tmp_path, city_dsn):
    sites = [Site(tmp_path, city_dsn, "an-khanh-1", CENTER_A, "Asia/Ho_Chi_Minh"),
             Site(tmp_path, city_dsn, "an-khanh-2", CENTER_A, "Asia/Tokyo")]
    days = [D0 + dt.timedelta(days=i) for i in range(3)]
    for i, s in enumerate(sites):
        for k, day in enumerate(days):
            s.play(day, seed=20 + 10 * i + k)
        s.ship()
    first, last = days[0].isoformat(), days[-1].isoformat()
    # the third site-day's mark held: the aggregator (2 site-days a transaction) blocks in
    # its second transaction, right before clearing that mark
    hold = psycopg.connect(city_dsn)
    hold.execute("SELECT 1 FROM city_days_dirty WHERE site = %s AND day = %s FOR UPDATE", (sites[0].site, days[2]))
    proc = subprocess.Popen([sys.executable, "-m", "qms.city", "--dsn", city_dsn, "aggregate"],
                            env={**os.environ, "PGAPPNAME": "killed-aggregator", "QMS_CITY_FOLD_BATCH": "2"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(city_dsn, autocommit=True) as conn:
            assert wait_until(lambda: conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'killed-aggregator' "
                "AND wait_event_type = 'Lock'").fetchone()[0] == 1, 30)
            proc.kill()
            proc.wait(10)
            hold.rollback()
            assert wait_until(lambda: conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'killed-aggregator'").fetchone()[0] == 0,
                30)
    finally:
        hold.close()
        if proc.poll() is None:
            proc.kill()
    assert daily_rows(city_dsn) == 2 and dirty(city_dsn) == 4      # the second transaction rolled back
    assert same(city_report(city_dsn, first, last), sites, days[0], days[-1])
    assert aggregate(city_dsn)["folded"] == 4
    assert dirty(city_dsn) == 0 and daily_rows(city_dsn) == 6
    assert same(city_report(city_dsn, first, last), sites, days[0], days[-1])
    # folding a day again writes the same row
    with psycopg.connect(city_dsn, autocommit=True) as conn:
        before = conn.execute("SELECT counts, waits, times FROM city_daily WHERE site = %s AND day = %s",
                              (sites[1].site, days[1])).fetchone()
        assert fold_batch(conn, {sites[1].site: sites[1].cfg}, [(sites[1].site, days[1])]) == 0     # not dirty
        after = conn.execute("SELECT counts, waits, times FROM city_daily WHERE site = %s AND day = %s",
                             (sites[1].site, days[1])).fetchone()
    assert before == after
    assert aggregate(city_dsn)["folded"] == 0


def test_the_serve_process_folds_quiet_days(tmp_path, city_dsn, monkeypatch):
    monkeypatch.setenv("QMS_CITY_FOLD_QUIET_S", "0")
    monkeypatch.setenv("QMS_CITY_FOLD_EVERY_S", "0.2")
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    try:
        s = Site(tmp_path, city_dsn, "an-khanh-1", CENTER_A, "Asia/Ho_Chi_Minh")
        s.play(D0, seed=5)
        s.ship()
        assert wait_until(lambda: dirty(city_dsn) == 0 and daily_rows(city_dsn) == 1, 30)
    finally:
        server.stop()
    assert same(city_report(city_dsn, D0.isoformat(), D0.isoformat()), [s], D0, D0)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_the_aggregator_runs_beside_the_ingest_and_ends_with_it(tmp_path, city_dsn, monkeypatch):
    """Folding is CPU-bound Python: it runs in a process of its own (niced), not on the
    ingest's event loop, and a kill -9 of serve leaves no orphan folding on."""
    monkeypatch.setenv("QMS_CITY_FOLD_QUIET_S", "0")
    monkeypatch.setenv("QMS_CITY_FOLD_EVERY_S", "0.2")
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    try:
        def aggregators() -> list[int]:         # (multiprocessing's resource tracker is a child too)
            return [k for k in _children(server.proc.pid)
                    if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]

        def nice(pid: int) -> int:
            return int(Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[16])

        assert wait_until(lambda: len(aggregators()) == 1 and nice(aggregators()[0]) == 10, 20)
        kids = _children(server.proc.pid)
        s = Site(tmp_path, city_dsn, "an-khanh-1", CENTER_A, "Asia/Ho_Chi_Minh")
        s.play(D0, seed=6)
        s.ship()
        assert wait_until(lambda: dirty(city_dsn) == 0 and daily_rows(city_dsn) == 1, 30)
        server.kill()
        assert wait_until(lambda: not any(_alive(k) for k in kids), 15)
    finally:
        server.stop()
