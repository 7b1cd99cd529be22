"""The point's own pages and the city: with a real city server (real PostgreSQL, real
uplinks) and a real `qms web` of the point.

- the citizen's ticket page suggests another point serving the same procedure with a
  markedly shorter wait, by name and address, and updates itself when that changes;
- the board lists the other points of this center with their waits per procedure;
- the city down: both vanish, no error for the citizen; a city that never answers does not
  hold the page; without [city] nothing is asked at all;
- the center's report through the city tier (`qms city report --center`).
"""
from __future__ import annotations

import datetime as dt
import http.client
import re
import subprocess
import sys

import httpx
import pytest
from playwright.sync_api import expect
from support.city import CENTER_A, CENTER_B, CityPoint, act, silent_city
from support.layout import CHECK, MIN_PX, WORDS, keep_png
from support.postgres import CityServer, point_rows, stored_seq
from support.wait import wait_until

from qms.city.report import city_report
from qms.config.site import load_config
from qms.web.server import WebApp

CITY = "\n[city]\npublic_url = \"{url}\"\ncache_seconds = 1\ntimeout_seconds = {timeout}\n"
A2_ADDRESS = "Số 5 đường Trần Não, phường An Khánh"


def text(html: str) -> str:
    """The words of a page as a reader sees them (without tags and no-break spaces)."""
    return re.sub(r"<[^>]+>", "", html).replace("\u00a0", " ")


def get(app: WebApp, path: str, timeout: float = 10) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def start_web(point: CityPoint, config=None) -> WebApp:
    return WebApp(load_config(config or point.config_path), point.db, clock=point.clock,
                  bookings_path=point.db.with_name("web.sqlite"),
                  bind="127.0.0.1", port=0, mqtt=False).start()


@pytest.fixture
def city(tmp_path, city_dsn):
    """Three points on a real city server: an-khanh-1 (this web's point) with a long line for
    civil status, an-khanh-2 of the same center with nobody waiting, binh-trung-1 of another
    center. Yields the server, the points and the waiting tickets at an-khanh-1."""
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    a1 = CityPoint(tmp_path, city_dsn, "an-khanh-1", "Điểm tiếp nhận chính", CENTER_A,
                   extra=CITY.format(url=server.url, timeout=1))
    a2 = CityPoint(tmp_path, city_dsn, "an-khanh-2", "Điểm tiếp nhận số 2", CENTER_A, address=A2_ADDRESS)
    b1 = CityPoint(tmp_path, city_dsn, "binh-trung-1", "Điểm tiếp nhận chính", CENTER_B)
    points = [a1, a2, b1]
    desks = {p.site: p.desk() for p in points}
    tickets = [act(desks["an-khanh-1"], "kiosk", desks["an-khanh-1"].kiosk, "ticket.request",
                   service="ho-tich").result["ticket"] for _ in range(14)]
    act(desks["an-khanh-2"], "kiosk", desks["an-khanh-2"].kiosk, "ticket.request", service="chung-thuc")
    for p in points:
        p.connect(server.url)
    assert wait_until(lambda: httpx.get(server.url + "/api/v1/suggest", params={
        "site": "an-khanh-1", "service": "ho-tich"}).json().get("suggestion") is not None, 30)
    yield server, points, desks, tickets
    for p in points:
        p.close()
    for d in desks.values():
        d.close()
    server.stop()


def test_ticket_page_suggests_a_point_with_a_shorter_wait_until_the_city_is_down(city, browser):
    server, (a1, a2, b1), desks, tickets = city
    last = tickets[-1]                                  # 13 people ahead
    web = start_web(a1)
    try:
        # the first view asks the city in the background; the page itself never waits for it
        assert wait_until(lambda: "Chờ ít hơn tại" in get(web, f"/t/{last['ticket_id']}")[1], 15)
        status, html = get(web, f"/t/{last['ticket_id']}")
        assert status == 200
        aside = text(html.split('id="elsewhere">')[1].split("</aside>")[0])
        assert "Chờ ít hơn tại Điểm tiếp nhận số 2: không phải chờ" in aside
        assert A2_ADDRESS in aside and CENTER_A not in aside        # its own center: not repeated
        # the first ticket has nobody ahead: no reason to send its holder elsewhere
        assert "elsewhere" not in get(web, f"/t/{tickets[0]['ticket_id']}")[1]
        assert web.health()["city"] == "ok"

        # the citizen's phone: the suggestion is there, in Vietnamese, and fits the screen
        ctx = browser.new_context(viewport={"width": 360, "height": 780}, is_mobile=True)
        page = ctx.new_page()
        outside = []
        page.on("request", lambda r: None if r.url.startswith(web.url) else outside.append(r.url))
        page.goto(f"{web.url}/t/{last['ticket_id']}")
        aside = page.locator("#elsewhere")
        expect(aside).to_contain_text("Chờ ít hơn tại Điểm tiếp nhận số 2: không phải chờ")
        expect(aside).to_contain_text("Số 5 đường Trần Não")
        expect(aside).to_contain_text("Số của bạn chỉ dùng được tại đây")
        assert page.evaluate(CHECK, [MIN_PX, 0, WORDS]) == []
        from io import BytesIO

        from PIL import Image
        keep_png(Image.open(BytesIO(page.screenshot(full_page=True))), "web-ticket-elsewhere-360x780")

        # a long line forms at an-khanh-2 too: the live page names the other center's point
        # instead, with its center (not this one's)
        for _ in range(14):
            act(desks["an-khanh-2"], "kiosk", desks["an-khanh-2"].kiosk, "ticket.request", service="ho-tich")
        expect(page.locator("#elsewhere")).to_contain_text(CENTER_B, timeout=30_000)
        expect(page.locator("#elsewhere")).to_contain_text("Chờ ít hơn tại Điểm tiếp nhận chính: không phải chờ")

        # the city goes down: the suggestion disappears, the page is as without a city
        server.kill()
        expect(page.locator("#elsewhere")).to_have_count(0, timeout=30_000)
        expect(page.locator("#ahead")).to_have_text("13")
        assert "Lỗi" not in page.inner_text("main") and "error" not in page.inner_text("main").lower()
        assert outside == []                     # the phone talks to the point only
        ctx.close()
        assert wait_until(lambda: web.health()["city"] == "unreachable", 10)
        status, html = get(web, f"/t/{last['ticket_id']}")
        assert status == 200 and "elsewhere" not in html
    finally:
        web.stop()


def test_board_lists_the_other_points_of_this_center(city, browser):
    server, (a1, a2, b1), desks, tickets = city
    web = start_web(a1)
    try:
        path = f"/board/{a1.site}"
        assert wait_until(lambda: 'id="points"' in get(web, path)[1], 15)
        html = get(web, path)[1]
        assert "Các điểm khác của trung tâm" in text(html)
        assert 'data-site="an-khanh-2"' in html                 # the other point of this center
        assert 'data-site="an-khanh-1"' not in html             # not itself
        assert 'data-site="binh-trung-1"' not in html           # not another center's
        ctx = browser.new_context(viewport={"width": 1280, "height": 720})
        page = ctx.new_page()
        page.goto(web.url + path)
        a2_card = page.locator('#points li.point[data-site="an-khanh-2"]')
        expect(a2_card.locator("h3")).to_have_text("Điểm tiếp nhận số 2")
        expect(a2_card.locator('tr[data-service="chung-thuc"] td.n')).to_have_text("1")
        expect(a2_card.locator('tr[data-service="ho-tich"] .wait [lang=vi]')).to_have_text("Không phải chờ")
        assert page.evaluate(CHECK, [MIN_PX, 0, WORDS]) == []
        from io import BytesIO

        from PIL import Image
        keep_png(Image.open(BytesIO(page.screenshot(full_page=True))), "web-board-points-1280x720")
        for w, h in ((360, 780), (1920, 1080)):             # a phone, the hall's TV
            other = ctx.new_page()
            other.set_viewport_size({"width": w, "height": h})
            other.goto(web.url + path)
            expect(other.locator('#points li.point[data-site="an-khanh-2"]')).to_be_visible()
            assert other.evaluate(CHECK, [MIN_PX, 0, WORDS]) == [], (w, h)
            other.close()
        # a new ticket there reaches this board live
        act(desks["an-khanh-2"], "kiosk", desks["an-khanh-2"].kiosk, "ticket.request", service="chung-thuc")
        expect(a2_card.locator('tr[data-service="chung-thuc"] td.n')).to_have_text("2", timeout=30_000)
        server.kill()
        expect(page.locator("#points")).to_have_count(0, timeout=30_000)
        expect(page.locator("section.counters")).to_be_visible()
        ctx.close()
    finally:
        web.stop()


def test_a_city_that_never_answers_does_not_hold_the_page(city):
    """A city that accepts the connection and then says nothing: pages answer at once (the
    look-up runs in the background with its own timeout), with nothing from the city."""
    server, (a1, a2, b1), desks, tickets = city
    silent, config = silent_city(a1, server.url, 20)
    web = start_web(a1, config)
    try:
        for _ in range(3):                 # each would wait 20 s for the city if the page did
            status, html = get(web, f"/t/{tickets[-1]['ticket_id']}", timeout=5)
            assert status == 200 and 'id="ahead"' in html and "elsewhere" not in html
            status, html = get(web, f"/board/{a1.site}", timeout=5)
            assert status == 200 and 'id="points"' not in html
        assert web.city.fetches >= 1
    finally:
        web.stop()
        silent.close()


def test_without_a_city_section_nothing_is_asked(city, tmp_path):
    server, (a1, a2, b1), desks, tickets = city
    config = tmp_path / "no-city.toml"
    config.write_text(a1.config_path.read_text(encoding="utf-8").split("\n[city]")[0], encoding="utf-8")
    web = start_web(a1, config)
    try:
        for path in (f"/t/{tickets[-1]['ticket_id']}", f"/board/{a1.site}"):
            status, html = get(web, path)
            assert status == 200 and "elsewhere" not in html and 'id="points"' not in html
        assert web.city.fetches == 0 and web.health()["city"] == "off"
    finally:
        web.stop()


def test_center_report_through_the_city_tier(city, city_dsn):
    """At the main center: `qms city report --center` covers its points and only them."""
    server, points, desks, tickets = city
    for p in points:
        last = max((r[0] for r in point_rows(p.db)), default=0)
        assert wait_until(lambda p=p, last=last: stored_seq(city_dsn, p.site) == last, 30)
    day = dt.datetime.fromtimestamp(points[0].clock() / 1000, points[0].cfg.tz).date().isoformat()  # the points' day
    out = subprocess.run([sys.executable, "-m", "qms", "city", "--dsn", city_dsn, "report", "--center", CENTER_A,
                          "--from", day], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    head = out.stdout.split("\n\n")[0]
    assert CENTER_A in head and "Điểm tiếp nhận chính, Điểm tiếp nhận số 2" in head, head
    assert CENTER_B not in out.stdout
    rep = city_report(city_dsn, day, day, center=CENTER_A)
    assert rep.total.issued == 15                     # 14 at an-khanh-1, 1 at an-khanh-2
    assert re.search(rf"^Tổng cộng\b.*\b{rep.total.issued}\b", out.stdout, re.M), out.stdout
