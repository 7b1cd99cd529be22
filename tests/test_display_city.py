"""The hall display and the city: with a real city server (real PostgreSQL, real uplinks) and
the real display app drawing headless.

- the band "Các điểm tiếp nhận khác" lists the other points of this center (not itself,
  not another center's) with their shortest wait, and follows them live;
- nothing is announced for another point;
- the city down: the band goes, the board goes on; a city that never answers does not hold
  the frame loop; without [city] nothing is asked and there is no band.
"""
from __future__ import annotations

import json

import httpx
import pygame
import pytest
from support.city import CENTER_A, CENTER_B, act, silent_city
from support.city import CityPoint as Point
from support.postgres import CityServer
from support.site import make_config
from support.wait import wait_until

from qms.citylink.answers import CityPoint, PointService
from qms.config.site import load_config
from qms.display.app import DisplayApp
from qms.display.board import POINTS
from qms.display.points import point_state

CITY = "\n[city]\npublic_url = \"{url}\"\ncache_seconds = 1\ntimeout_seconds = {timeout}\n"


@pytest.fixture
def city(tmp_path, city_dsn):
    """an-khanh-1 (this display's point, nobody waiting), an-khanh-2 of the same center with
    one ticket for "chung-thuc", binh-trung-1 of another center."""
    server = CityServer(city_dsn, log_path=tmp_path / "server.log").start()
    a1 = Point(tmp_path, city_dsn, "an-khanh-1", "Điểm tiếp nhận chính", CENTER_A,
                   extra=CITY.format(url=server.url, timeout=1))
    a2 = Point(tmp_path, city_dsn, "an-khanh-2", "Điểm tiếp nhận số 2", CENTER_A)
    b1 = Point(tmp_path, city_dsn, "binh-trung-1", "Điểm tiếp nhận chính", CENTER_B)
    points = [a1, a2, b1]
    desks = {p.site: p.desk() for p in points}
    act(desks["an-khanh-2"], "kiosk", desks["an-khanh-2"].kiosk, "ticket.request", service="chung-thuc")
    for p in points:
        p.connect(server.url)
    assert wait_until(lambda: {p["site"] for p in httpx.get(server.url + "/api/v1/city").json()
                               if not p["stale"]} >= {"an-khanh-1", "an-khanh-2", "binh-trung-1"}, 30)
    yield server, points, desks
    for p in points:
        p.close()
    for d in desks.values():
        d.close()
    server.stop()


def display(config, size=(1280, 720)) -> DisplayApp:
    """The point's hall display, offline from its broker (the city is read over HTTP)."""
    return DisplayApp(load_config(config), size=size, fullscreen=False, voice=False, connect=False)


def until(app: DisplayApp, cond, timeout: float = 15.0) -> bool:
    """Turn the display's main loop until `cond` holds."""
    return wait_until(cond, timeout, step=lambda: app.step(0.05), every=0)


def call(app: DisplayApp, number: int, counter: int) -> None:
    """A call at this point, as the service publishes it."""
    app.feed(("msg", app.topics.event("ticket.called"), json.dumps({
        "type": "ticket.called", "at": 5000, "seq": 1, "ticket_id": f"t{number}", "number": number,
        "service": "chung-thuc", "counter": counter}).encode()))


def test_the_hall_display_lists_the_other_points_of_its_center(city, artifacts):
    server, (a1, a2, b1), desks = city
    app = display(a1.config_path)
    try:
        assert until(app, lambda: app.renderer.drawn_points)
        assert [p.site for p in app.model.points] == ["an-khanh-2"]        # not itself, not Bình Trưng
        # ho-tich and others: nobody waits there; chung-thuc has one person
        assert app.renderer.drawn_points == ["Điểm tiếp nhận số 2: có lĩnh vực không phải chờ"]
        assert app.model.hero is None and app._to_announce == []          # nothing to call out
        pygame.image.save(app.screen, artifacts / "display-city-points-1280x720.png")

        # a line forms at an-khanh-2 for every procedure: the band follows
        sim = desks["an-khanh-2"]
        for sv in a2.cfg.services:
            for _ in range(3):
                act(sim, "kiosk", sim.kiosk, "ticket.request", service=sv.id)
        assert until(app, lambda: app.renderer.drawn_points[:1] != ["Điểm tiếp nhận số 2: có lĩnh vực không phải chờ"], 30)
        assert app.renderer.drawn_points[0].startswith("Điểm tiếp nhận số 2: chờ "), app.renderer.drawn_points
        assert app._to_announce == [] and app.renderer.drawn_hero is None

        # the city goes down: the band goes, the board goes on as without a city
        server.kill()
        assert until(app, lambda: POINTS not in app.renderer.layout.rects, 30)
        assert app.model.points == [] and app.city.state() == "unreachable"
        call(app, 1005, 3)
        assert until(app, lambda: app.renderer.drawn_hero == 1005)
        pygame.image.save(app.screen, artifacts / "display-city-down-1280x720.png")
    finally:
        app.close()


def test_a_city_that_never_answers_does_not_hold_the_board(city):
    """The city accepts the connection and says nothing: the display draws its frames and
    calls all the same (the reader waits on its own thread, up to its 30 s timeout)."""
    server, (a1, a2, b1), desks = city
    silent, config = silent_city(a1, server.url, 30)
    app = display(config)
    try:
        assert until(app, lambda: app.city.fetches >= 1 and app.frames >= 1)
        for number in (1001, 1002, 1003):   # each would wait 30 s for the city if the loop did
            call(app, number, 2)
            assert until(app, lambda n=number: app.renderer.drawn_hero == n, 10)
        assert POINTS not in app.renderer.layout.rects and app.model.points == []
    finally:
        app.close()
        silent.close()


def test_without_a_city_nothing_is_asked(tmp_path):
    app = display(make_config(tmp_path, 1883))
    try:
        assert app.city is None
        app.step(0)
        call(app, 1001, 1)
        assert until(app, lambda: app.renderer.drawn_hero == 1001)
        assert POINTS not in app.renderer.layout.rects
    finally:
        app.close()


def _sv(waiting, est_s, open=True):
    return PointService("x", waiting=waiting, est_wait_s=est_s, open=open)


@pytest.mark.parametrize("services, said", [
    ([_sv(3, 1980), _sv(9, 3900)], "chờ từ 33 phút"),
    ([_sv(9, 3900), _sv(2, 300, open=False)], "chờ từ 1 giờ 5 phút"),       # a closed procedure does not count
    ([_sv(0, 0), _sv(0, None)], "không phải chờ"),
    ([_sv(0, 0), _sv(4, 700)], "có lĩnh vực không phải chờ"),
    ([_sv(1, 20)], "chờ dưới 1 phút"),
    ([_sv(1, 20, open=False)], "đã đóng cửa"),
])
def test_what_the_band_says_of_a_point(services, said):
    """In the display's own words for a wait (qms/core/wait_text.py short_phrase)."""
    assert point_state(CityPoint("p", "c", "Điểm", stale=False, open=True, services=services))[0] == said
    assert point_state(CityPoint("p", "c", "Điểm", stale=True, services=services)) == ("chưa có số liệu mới", "stale")
    assert point_state(CityPoint("p", "c", "Điểm", stale=False, open=False, services=services))[0] == "đã đóng cửa"
