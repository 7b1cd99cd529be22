"""Hall display: the pure BoardModel, headless screenshots of every layout, dirty-region
drawing, and a board fed by the real service through a real Mosquitto."""
import json
import time

import pygame
import pytest
from support.media import colour_count
from support.wait import wait_until

from qms.display.board import CALLS, COUNTERS, HERO, LINK, SERVICES, TICKER, BoardModel
from qms.display.render import ALERT, HERO_BG, HERO_TEXT, BoardRenderer, Fonts, make_layout
from qms.protocol.topics import Topics

SITE = "test-site"
T = Topics(SITE)
LONG = "Văn hóa – Xã hội (trợ cấp, người có công, bảo trợ xã hội, giảm nghèo, trẻ em)"
NAMES = {"chung-thuc": "Chứng thực (sao y, chứng thực chữ ký)",
         "ho-tich": "Hộ tịch (khai sinh, kết hôn, khai tử)",
         "van-hoa-xa-hoi": LONG,
         "nhan-ket-qua": "Nhận kết quả / hỗ trợ nộp trực tuyến"}
CENTER = "Trung tâm Phục vụ hành chính công phường Nguyễn Thị Minh Khai"


class FakeTime:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def counter_state(n, number=None, status="open"):
    serving = {"ticket_id": f"t{number}", "number": number, "service": "chung-thuc",
               "called_at": 1, "priority": None} if number else None
    return json.dumps({"v": 1, "counter": n, "status": status, "reason": "", "paused_at": None,
                       "serving": serving, "services": ["chung-thuc"], "day": "2026-11-24"}).encode()


def calls_state(numbers):
    return json.dumps({"v": 1, "day": "2026-11-24", "calls": [
        {"number": n, "counter": 1 + i % 6, "service": "chung-thuc", "ticket_id": f"t{n}", "at": 1000 - i}
        for i, n in enumerate(numbers)]}).encode()


def called(number, counter, at, kind="ticket.called", service="van-hoa-xa-hoi", topics=T):
    body = {"type": kind, "at": at, "seq": 1, "ticket_id": f"t{number}", "number": number,
            "service": service, "counter": counter}
    if kind == "ticket.recalled":
        body["count"] = 1
    return topics.event(kind), json.dumps(body).encode()


def fed_model(clock=None) -> BoardModel:
    m = BoardModel(SITE, [1, 2, 3, 4, 5, 6], list(NAMES),
                   ticker="Hồ sơ số 123 đã có kết quả — Trung tâm đóng cửa lúc 17 giờ",
                   clock=clock or FakeTime())
    for n in range(1, 7):
        # counter 1 serves the latest call (1009, below); counter 5 is free
        m.handle(T.counter_state(n), counter_state(n, (1009 if n == 1 else 1000 + n) if n != 5 else None,
                                                   "paused" if n == 4 else "open"))
    for i, s in enumerate(NAMES):
        m.handle(T.service_state(s), json.dumps({"v": 1, "service": s, "waiting": 3 + 7 * i}).encode())
    m.handle(T.calls, calls_state([1009, 1008, 1007, 1006, 1004, 1003, 1002]))
    return m


# ------------------------------------------------------------------ model
def test_boots_from_retained_state_without_announcing():
    m = fed_model()
    assert m.hero.number == 1009 and m.hero_since is None          # shown, not blinking
    assert m.counters[4].status == "paused" and m.counters[2].serving.number == 1002
    assert m.services["van-hoa-xa-hoi"].waiting == 17
    assert [c.number for c in m.recent_calls(3)] == [1008, 1007, 1006]


def test_the_big_call_goes_when_its_counter_no_longer_serves_it():
    m = fed_model()
    assert m.hero.number == 1009
    m.take_dirty()
    m.handle(T.counter_state(1), counter_state(1, None))          # 1009 done: Quầy 1 is free
    assert m.hero is None and HERO in m.take_dirty()


def test_a_call_fact_announces_once_and_blinks():
    clock = FakeTime()
    m = fed_model(clock)
    m.take_dirty()
    topic, payload = called(1010, 3, at=2000)
    assert [(a.number, a.counter, a.recall) for a in m.handle(topic, payload)] == [(1010, 3, False)]
    assert m.handle(topic, payload) == []                          # QoS 1 duplicate
    assert m.hero.number == 1010 and m.blinking(10)
    assert m.counters[3].serving.number == 1010
    assert [c.number for c in m.calls[:2]] == [1010, 1009]
    assert m.take_dirty() == {HERO, CALLS, COUNTERS}
    clock.t += 11
    assert not m.blinking(10)
    # the retained state that follows the fact changes nothing on the hero
    m.handle(T.calls, json.dumps({"calls": [{"number": 1010, "counter": 3, "ticket_id": "t1010",
                                              "at": 2000}] + [{"number": 1009, "counter": 1,
                                                                "ticket_id": "t1009", "at": 1000}]}).encode())
    assert HERO not in m.take_dirty()
    topic, payload = called(1010, 3, at=2500, kind="ticket.recalled")
    assert [(a.number, a.recall) for a in m.handle(topic, payload)] == [(1010, True)]
    assert m.blinking(10)


@pytest.mark.parametrize("topic,payload", [
    (T.counter_state(2), b"{not json"),
    (T.counter_state(2), b'{"counter": 2, "status": "sleeping"}'),
    (T.counter_state(2), counter_state(3, 1003)),                      # wrong topic
    (T.service_state("ho-tich"), b'{"service": "ho-tich", "waiting": "many"}'),
    (T.calls, b'{"calls": [{"number": "1005"}]}'),
    (T.notice, b"[1, 2]"),
    (T.event("ticket.called"), b'{"number": 1005}'),
    (T.event("ticket.called"), "\udcff".encode("utf-8", "surrogatepass")),
])
def test_malformed_payloads_are_ignored(topic, payload):
    m = fed_model()
    before = (dict(m.counters), dict(m.services), list(m.calls), m.hero)
    assert m.handle(topic, payload) == []
    assert m.malformed == 1
    assert (dict(m.counters), dict(m.services), list(m.calls), m.hero) == before


def test_notice_replaces_the_configured_ticker_and_is_nfc():
    m = fed_model()
    assert m.ticker_text().startswith("Hồ sơ số 123")
    decomposed = "Trung tâm nghỉ trưa từ 11 giờ 30".encode()
    import unicodedata
    decomposed = unicodedata.normalize("NFD", "Trung tâm nghỉ trưa từ 11 giờ 30")
    m.handle(T.notice, json.dumps({"v": 1, "text_vi": decomposed, "text_en": "Lunch break"}).encode())
    assert m.ticker_text() == "Trung tâm nghỉ trưa từ 11 giờ 30   •   Lunch break"
    assert TICKER in m.take_dirty()
    m.handle(T.notice, json.dumps({"v": 1, "text_vi": "", "text_en": ""}).encode())
    assert m.ticker_text().startswith("Hồ sơ số 123")


def test_other_sites_are_ignored():
    m = fed_model()
    assert m.handle("qms/v1/other/event/ticket.called", called(1, 1, 1)[1]) == []
    assert m.malformed == 0


# ------------------------------------------------------------------ screenshots
LAYOUTS = [(1920, 1080), (1280, 720), (1080, 1920), (720, 1280)]


def render_board(size, connected=False):
    pygame.display.init()
    pygame.font.init()
    m = fed_model()
    m.set_connected(connected)
    m.handle(*called(1005, 3, at=5000))
    surf = pygame.Surface(size)
    r = BoardRenderer(surf, m, center=CENTER, site="Điểm tiếp nhận phụ Cù Lao Dung",
                      service_names=NAMES, last_calls=6)
    rects = r.draw(m.take_dirty(), t=m.clock())
    return surf, r, rects


@pytest.mark.parametrize("size", LAYOUTS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_screenshot_of_every_layout(size, artifacts):
    surf, r, rects = render_board(size)
    pygame.image.save(surf, artifacts / f"display-{size[0]}x{size[1]}.png")
    layout = make_layout(*size)
    assert layout.portrait == (size[1] > size[0])
    for name, rect in layout.rects.items():
        assert surf.get_rect().contains(rect), name
        # every region has drawn text: many pixels differ from its flat background
        sub = surf.subsurface(rect)
        flat = sub.get_at((1, 1))
        differing = rect.width * rect.height - pygame.mask.from_threshold(sub, flat, (4, 4, 4, 255)).count()
        assert differing > rect.width * rect.height * 0.003, name
    # the called number is huge: its dark-on-amber ink spans a large part of the hero
    hero = layout.rects[HERO]
    ink = pygame.mask.from_threshold(surf.subsurface(hero), HERO_TEXT, (30, 30, 30, 255))
    box = ink.get_bounding_rects()
    tallest = max(b.height for b in box)
    assert tallest > hero.height * 0.25
    assert colour_count(surf, hero, HERO_BG) > hero.width * hero.height * 0.4
    assert r.drawn_hero == 1005
    # the "mất kết nối" mark is small and red
    link = layout.rects[LINK]
    assert link.width * link.height < size[0] * size[1] * 0.02
    assert colour_count(surf, link, ALERT) > 20


def test_no_connection_mark_while_connected():
    surf, r, _ = render_board((1280, 720), connected=True)
    assert colour_count(surf, make_layout(1280, 720).rects[LINK], ALERT) == 0


def test_every_character_has_a_glyph(monkeypatch):
    if not hasattr(pygame.image, "tobytes"):    # pygame < 2.1.3 (Debian Bookworm's 2.1.2)
        monkeypatch.setattr(pygame.image, "tobytes", pygame.image.tostring, raising=False)
    pygame.font.init()
    fonts = Fonts()
    texts = list(NAMES.values()) + [CENTER, "1005 → Quầy 3", "● mất kết nối", "Tạm nghỉ", "—",
                                    "ĐANG MỜI / Now calling", "Số vừa gọi / Recent calls",
                                    "Các quầy / Counters", "Đang chờ / Waiting",
                                    "Thứ Hai Thứ Ba Thứ Tư Thứ Năm Thứ Sáu Thứ Bảy Chủ Nhật",
                                    # all 134 accented Vietnamese letters
                                    "àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ"]
    texts.append(texts[-1].upper())
    for bold in (False, True):
        assert fonts.missing_glyphs(" ".join(texts), bold) == set()
    assert fonts.missing_glyphs("\ue001") == {"\ue001"}               # the check can fail


def test_long_names_shrink_to_fit():
    pygame.font.init()
    fonts = Fonts()
    for width in (300, 500, 900):
        s = fonts.render_wrapped(LONG, width, 60, (255, 255, 255))
        assert s.get_width() <= width and s.get_height() <= 60 * 1.3
    one_line = fonts.render_fit("Đất đai", 500, 60, (255, 255, 255))
    assert one_line.get_height() > fonts.render_fit(LONG, 500, 60, (255, 255, 255)).get_height()


# ------------------------------------------------------------------ drawing only what changes
@pytest.fixture
def offline_app(tmp_path, site_config):
    from qms.config.site import load_config
    from qms.display.app import DisplayApp
    cfg = load_config(site_config)
    cfg.display.blink_seconds = 1.0
    cfg.display.blink_period = 0.25
    app = DisplayApp(cfg, size=(1280, 720), fullscreen=False, voice=False, connect=False)
    yield app
    app.close()


def test_an_idle_board_does_not_redraw(offline_app):
    app = offline_app
    assert len(app.step(0)) >= 6                 # first frame: everything
    t0, frames = time.monotonic(), app.frames
    while time.monotonic() - t0 < 1.5:
        app.step(0.5)
    assert app.frames - frames <= 1              # at most the clock's minute


def test_a_call_redraws_only_its_regions_and_blinks_for_its_time(offline_app):
    app = offline_app
    app.step(0)
    app.feed(("msg",) + called(1005, 3, at=1, service="chung-thuc", topics=app.topics))
    rects = app.step(0)
    layout = app.renderer.layout                 # without a ticker text: no ticker band
    assert set(map(tuple, rects)) >= {tuple(layout.rects[HERO]), tuple(layout.rects[CALLS])}
    assert tuple(layout.rects[SERVICES]) not in set(map(tuple, rects))
    assert app.renderer.drawn_hero == 1005
    hero_frames = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        if tuple(layout.rects[HERO]) in set(map(tuple, app.step(0.5))):
            hero_frames += 1
    assert 3 <= hero_frames <= 6                 # ~4 toggles in 1 s, then steady


# ------------------------------------------------------------------ through the real service
def _until(app, cond, timeout=10.0):
    """Turn the display's main loop until `cond` holds."""
    return wait_until(cond, timeout, step=lambda: app.step(0.05), every=0)


def _app(site_config, **kw):
    from qms.config.site import load_config
    from qms.display.app import DisplayApp
    return DisplayApp(load_config(site_config), size=(1280, 720), fullscreen=False, **kw).start()


def test_board_follows_the_service_and_survives_restarts(service, broker, site_config, tmp_path, artifacts):
    from qms.config.site import load_config
    from qms.mqtt.device import Device
    cfg = load_config(site_config)
    kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp_path / "k.sqlite").start()
    counter = Device(cfg, "counter-3", "counter", outbox_path=tmp_path / "c.sqlite").start()
    try:
        for _ in range(3):
            _, ack = kiosk.request("ticket.request", 10, service="ho-tich")
            assert ack and ack.ok
        app = _app(site_config, voice=False)
        try:
            assert _until(app, lambda: app.model.connected and app.model.services["ho-tich"].waiting == 3)
            _, ack = counter.request("counter.next", 10)
            number = ack.result["ticket"]["number"]
            assert _until(app, lambda: app.renderer.drawn_hero == number)
            assert app.model.blinking(app.cfg.display.blink_seconds)
            assert _until(app, lambda: app.model.counters[3].serving is not None
                          and app.model.services["ho-tich"].waiting == 2)
            # the broker goes away: the board keeps its picture and shows the discreet mark
            broker.stop()
            assert _until(app, lambda: not app.model.connected)
            layout = make_layout(1280, 720)
            assert colour_count(app.screen, layout.rects[LINK], ALERT) > 20
            assert app.renderer.drawn_hero == number
            pygame.image.save(app.screen, artifacts / "display-link-down.png")
            broker.start()     # no persistence: the service republishes its retained state
            assert _until(app, lambda: app.model.connected, timeout=30)
            assert colour_count(app.screen, layout.rects[LINK], ALERT) == 0
            assert counter.request("counter.next", 10)[1].ok
            assert _until(app, lambda: app.renderer.drawn_hero == number + 1)
        finally:
            app.close()
        # a display that restarts boots into the same picture from retained messages, silently
        app = _app(site_config, voice=False)
        try:
            assert _until(app, lambda: app.renderer.drawn_hero == number + 1)
            assert app.model.hero_since is None                     # restored, not a new call
            assert app.model.counters[3].serving.number == number + 1
            assert app.model.services["ho-tich"].waiting == 1
            pygame.image.save(app.screen, artifacts / "display-restored.png")
        finally:
            app.close()
    finally:
        kiosk.stop()
        counter.stop()


def test_calls_are_announced_by_the_display(service, site_config, tmp_path):
    """The display's CallAnnouncer speaks each call fact once (voice pack of tones, dummy audio)."""
    from support.media import FREQ, tone, write_wav

    from qms.config.site import load_config
    from qms.mqtt.device import Device
    from qms.voice.packs import CLIP_NAMES
    pack = tmp_path / "pack"
    pack.mkdir()
    for token, stem in CLIP_NAMES.items():
        write_wav(pack / f"{stem}.wav", tone(FREQ[token], 20))
    site_config.write_text(site_config.read_text() + f'\n[voice]\nsource = "pack"\npack = "{pack}"\n'
                           'repeat = 1\ngap_ms = 0\n')
    cfg = load_config(site_config)
    kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp_path / "k.sqlite").start()
    counter = Device(cfg, "counter-1", "counter", outbox_path=tmp_path / "c.sqlite").start()
    app = _app(site_config)
    try:
        assert app.announcer is not None
        assert _until(app, lambda: app.model.connected)
        kiosk.request("ticket.request", 10, service="chung-thuc")
        number = counter.request("counter.next", 10)[1].result["ticket"]["number"]
        assert counter.request("counter.recall", 10)[1].ok
        assert _until(app, lambda: len([a for a in app.announcer.history if a.spoken_at]) == 2, 20)
        assert [(a.number, a.counter, a.recall) for a in app.announcer.history] == \
            [(number, 1, False), (number, 1, True)]
    finally:
        app.close()
        kiosk.stop()
        counter.stop()
