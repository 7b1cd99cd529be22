"""The main center sees its sub-points: reports on the central store (one point, one center,
the whole city), the read-only city API, and the public city view in a real Chromium."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import httpx
import msgspec
import pytest
from playwright.sync_api import expect
from support import postgres
from support.city import CENTER_A, CENTER_B, CityPoint, act
from support.postgres import CityServer, center_rows, point_rows, stored_seq
from support.wait import wait_until

from qms.city.report import city_report
from qms.reports.stats import Point, build_report

pg_cluster, city_dsn = postgres.pg_cluster, postgres.city_dsn     # fixtures
DAY = dt.date(2026, 11, 24)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def city(tmp_path, city_dsn):
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    points = [CityPoint(tmp_path, city_dsn, "an-khanh-1", "Điểm tiếp nhận chính", CENTER_A),
              CityPoint(tmp_path, city_dsn, "an-khanh-2", "Điểm tiếp nhận số 2", CENTER_A),
              CityPoint(tmp_path, city_dsn, "binh-trung-1", "Điểm tiếp nhận chính", CENTER_B)]
    yield server, points
    for p in points:
        p.close()
    server.stop()


def wait_shipped(dsn: str, points: list[CityPoint]) -> None:
    for p in points:
        last = point_rows(p.db)[-1][0]
        assert wait_until(lambda p=p, last=last: stored_seq(dsn, p.site) == last, 30), p.uplink.stats


def test_reports_of_a_point_a_center_and_the_city(city, city_dsn, tmp_path):
    server, points = city
    for i, p in enumerate(points):
        p.play_day(DAY, seed=10 + i)
        p.connect(server.url)
    wait_shipped(city_dsn, points)
    day = DAY.isoformat()

    # one center = its points, as its own multi-point report on their own logs says
    a1, a2, b1 = points
    own = build_report([Point(a1.cfg, a1.db), Point(a2.cfg, a2.db)], day, day)
    central = city_report(city_dsn, day, day, center=CENTER_A)
    assert msgspec.to_builtins(central.rows) == msgspec.to_builtins(own.rows)
    assert [r.key for r in central.section("point")] == ["an-khanh-1", "an-khanh-2"]

    # the whole city: every point, each one's figures its own
    city_rep = city_report(city_dsn, day, day)
    assert city_rep.center == "Toàn thành phố"
    assert city_rep.total.issued == sum(build_report([Point(p.cfg, p.db)], day, day).total.issued for p in points)
    assert {r.key for r in city_rep.section("point")} == {"an-khanh-1", "an-khanh-2", "binh-trung-1"}

    # the read-only API says the same, as JSON
    r = httpx.get(server.url + "/api/v1/report", params={"center": CENTER_A, "from": day, "to": day})
    assert r.status_code == 200
    assert r.json()["rows"] == msgspec.to_builtins(own.rows)
    r = httpx.get(server.url + "/api/v1/report", params={"from": "2026-11-30", "to": "2026-11-01"})
    assert r.status_code == 400 and "before" in r.json()["message"]
    r = httpx.get(server.url + "/api/v1/report", params={"site": "khong-co", "from": day})
    assert r.status_code == 400 and r.json()["message"] == "no such point"

    # and the command line, in Vietnamese
    out = subprocess.run([sys.executable, "-m", "qms.city", "--dsn", city_dsn, "report", "--site", "binh-trung-1",
                          "--from", day], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Tổng cộng" in out.stdout and str(build_report([Point(b1.cfg, b1.db)], day, day).total.issued) in out.stdout
    assert center_rows(city_dsn, "binh-trung-1") == point_rows(b1.db)



def test_city_page_lists_every_point_live_and_filters_by_procedure(city, city_dsn, browser, artifacts):
    server, points = city
    a1, a2, b1 = points
    desks = {p.site: p.desk() for p in points}
    for _ in range(14):                               # a long line for civil status at a1
        act(desks["an-khanh-1"], "kiosk", desks["an-khanh-1"].kiosk, "ticket.request", service="ho-tich")
    act(desks["binh-trung-1"], "kiosk", desks["binh-trung-1"].kiosk, "ticket.request", service="ho-tich")
    act(desks["an-khanh-2"], "kiosk", desks["an-khanh-2"].kiosk, "ticket.request", service="chung-thuc")
    for p in points:
        p.connect(server.url)
    assert wait_until(lambda: len(httpx.get(server.url + "/api/v1/city").json()) == 3
                      and all(e["updated_at"] for e in httpx.get(server.url + "/api/v1/city").json()), 20)

    ctx = browser.new_context(viewport={"width": 360, "height": 800}, is_mobile=True)
    # the page must never ask where the citizen is
    ctx.add_init_script("""window.__geo = 0; if (navigator.geolocation) {
        navigator.geolocation.getCurrentPosition = () => { window.__geo++; };
        navigator.geolocation.watchPosition = () => { window.__geo++; }; }""")
    page = ctx.new_page()
    outside = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
    try:
        page.goto(server.url + "/")
        expect(page.locator("#status")).to_have_class("status ok", timeout=10_000)
        expect(page.locator("li.point")).to_have_count(3)
        a1_card = page.locator('li.point[data-site="an-khanh-1"]')
        expect(a1_card.locator(".state")).to_have_text("Đang mở cửa")
        expect(a1_card.locator(".center")).to_have_text(CENTER_A)
        ho_tich = a1_card.locator('li[data-service="ho-tich"] .wait')
        expect(ho_tich).to_contain_text("Chờ khoảng")
        expect(ho_tich).to_contain_text("14 người đang chờ")
        page.screenshot(path=str(artifacts / "city-all.png"), full_page=True)
        for width, height in ((768, 1024), (1280, 800), (1920, 1080)):     # a tablet, a PC, a hall TV
            page.set_viewport_size({"width": width, "height": height})
            assert page.evaluate("document.documentElement.scrollWidth") <= width, f"wider than {width} px"
            page.screenshot(path=str(artifacts / f"city-all-{width}x{height}.png"), full_page=True)
        page.set_viewport_size({"width": 360, "height": 800})

        # filter by procedure: only points offering it, shortest wait first, only that row
        page.select_option("#service", "ho-tich")
        assert page.url.endswith("?service=ho-tich")
        expect(page.locator("li.point").first).to_have_attribute("data-site", "an-khanh-2")    # nobody waits
        assert page.locator("li.point").evaluate_all("ps => ps.map(p => p.dataset.site)") == [
            "an-khanh-2", "binh-trung-1", "an-khanh-1"]
        expect(page.locator('li.point li[data-service]:not([data-service="ho-tich"])')).to_have_count(0)
        expect(page.locator('li.point[data-site="binh-trung-1"] li[data-service="ho-tich"] .wait')).to_contain_text(
            "1 người đang chờ")
        page.screenshot(path=str(artifacts / "city-ho-tich.png"), full_page=True)

        # a call at binh-trung-1 reaches the page live: nobody waits for civil status there now
        counter = next(d.id for d in b1.cfg.devices if d.role == "counter" and d.counter == 2)
        act(desks["binh-trung-1"], "counter", counter, "counter.next")
        expect(page.locator('li.point[data-site="binh-trung-1"] li[data-service="ho-tich"] .wait')).to_contain_text(
            "Không phải chờ", timeout=10_000)

        # the ticket page's suggestion: the same procedure, a markedly shorter wait elsewhere
        s = httpx.get(server.url + "/api/v1/suggest", params={"site": "an-khanh-1", "service": "ho-tich"}).json()
        assert s["suggestion"]["site"] == "an-khanh-2" and s["est_wait_s"] > 15 * 60
        assert s["suggestion"]["center"] == CENTER_A and s["suggestion"]["waiting"] == 0
        s = httpx.get(server.url + "/api/v1/suggest", params={"site": "binh-trung-1", "service": "ho-tich"}).json()
        assert s["suggestion"] is None

        assert page.evaluate("window.__geo") == 0
        assert ctx.cookies() == []
        assert outside == []
    finally:
        ctx.close()
        for d in desks.values():
            d.close()


def test_city_view_marks_a_silent_point_and_refuses_bad_requests(city, city_dsn):
    server, points = city
    r = httpx.get(server.url + "/api/v1/suggest")
    assert r.status_code == 400
    # registered points are listed before they ever report (the board follows NOTIFY)
    assert wait_until(lambda: len(httpx.get(server.url + "/api/v1/city").json()) == 3, 10)
    r = httpx.get(server.url + "/api/v1/city")         # httpx asks for gzip and unpacks it
    assert r.headers["content-encoding"] == "gzip"
    board = r.json()
    assert httpx.get(server.url + "/api/v1/city", headers={"Accept-Encoding": "identity"}).json() == board
    assert {e["site"] for e in board} == {"an-khanh-1", "an-khanh-2", "binh-trung-1"}
    assert all(e["stale"] and not e["open"] for e in board)       # none has reported yet
    r = httpx.get(server.url + "/")
    assert "geolocation=()" in r.headers["permissions-policy"]
    assert "Thời gian chờ tại các điểm tiếp nhận hồ sơ" in r.text
