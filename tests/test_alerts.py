"""Staff alerts (retained alert/<kind>/<key>, as `qms web` publishes them) shown on the hall
display and the counter terminals, over a real Mosquitto: raised → shown, cleared (empty
retained payload) → gone, malformed → ignored with the last good picture kept."""
from __future__ import annotations

import json
import time
import unicodedata

import pygame
import pytest
from support.counter import CounterRig
from support.media import colour_count
from support.wait import barrier, wait_until

from qms.config.site import load_config
from qms.display.board import ALERTS, BoardModel
from qms.display.render import ALERT_BG, BoardRenderer, make_layout
from qms.mqtt.client import MqttLink
from qms.protocol.alerts import ActiveAlerts
from qms.protocol.topics import Topics

SITE = "phuong-an-khanh"
T = Topics(SITE)
WAIT_VI = "Hộ tịch (khai sinh, kết hôn, khai tử): có người đã chờ 52 phút (mục tiêu 45 phút)."
PAUSE_VI = "Quầy 3 đã tạm nghỉ 27 phút (cho phép 20 phút)."
LAND_VI = "Đất đai: có người đã chờ 48 phút (mục tiêu 45 phút)."


def alert(kind: str, key: str, message_vi: str, value_min: int = 50, **extra) -> bytes:
    """The payload of qms/web/alerts.py (docs/web.md)."""
    return json.dumps({"v": 1, "active": True, "kind": kind, "key": key, "since": 1795488300000,
                       "value_min": value_min, "target_min": 45, "message_vi": message_vi,
                       "message_en": "…", **extra}, ensure_ascii=False).encode()


MALFORMED = [
    (T.alert("wait", "dat-dai"), b"not json {"),
    (T.alert("wait", "dat-dai"), alert("wait", "xay-dung", LAND_VI)),        # key of another topic
    (T.alert("wait", "dat-dai"), alert("wait", "dat-dai", "   ")),          # nothing to show
    (T.alert("wait", "dat-dai"), json.dumps({"kind": "wait", "key": "dat-dai"}).encode()),
    (T.alert("wait", "dat-dai"), b"[1, 2]"),
    (T.alert("pause", "3"), alert("pause", "3", PAUSE_VI, value_min="many")),
]


class Publisher:
    """Stands for `qms web`: retained alerts at QoS 1."""

    def __init__(self, cfg):
        self.link = MqttLink(cfg.mqtt, "alert-publisher")
        self.link.start()
        assert self.link.wait_connected(10)

    def __call__(self, topic: str, payload: bytes) -> None:
        self.link.publish(topic, payload, qos=1, retain=True)

    def close(self):
        self.link.stop()


# ------------------------------------------------------------------ the pure parts
def test_active_alerts_raise_update_clear_and_refuse_bad_payloads():
    a = ActiveAlerts()
    assert a.apply("wait", "ho-tich", alert("wait", "ho-tich", WAIT_VI)) == "raised"
    assert a.apply("wait", "ho-tich", alert("wait", "ho-tich", WAIT_VI)) == ""
    assert a.apply("wait", "ho-tich", alert("wait", "ho-tich", WAIT_VI, 53, future_field=1)) == "updated"
    nfd = unicodedata.normalize("NFD", PAUSE_VI)          # shown NFC whatever arrives
    assert nfd != PAUSE_VI and a.apply("pause", "3", alert("pause", "3", nfd)) == "raised"
    assert a.alerts[("pause", "3")].message_vi == PAUSE_VI
    for topic, payload in MALFORMED:
        kind, key = topic.split("/")[-2:]
        with pytest.raises(ValueError):
            a.apply(kind, key, payload)
    assert [x.kind for x in a.ordered()] == ["wait", "pause"] and len(a) == 2
    assert a.apply("wait", "ho-tich", b"") == "cleared"
    assert a.apply("wait", "ho-tich", b"") == ""
    assert a.apply("pause", "3", json.dumps({"kind": "pause", "key": "3", "message_vi": "x",
                                             "active": False}).encode()) == "cleared"
    assert len(a) == 0


def test_alert_strip_in_portrait_and_landscape(artifacts):
    """Without alerts there is no strip; with them a thin one, and the panels make room."""
    pygame.display.init()
    pygame.font.init()
    for size in ((1920, 1080), (1080, 1920)):
        m = BoardModel(SITE, [1, 2, 3], ["ho-tich", "dat-dai"])
        surf = pygame.Surface(size)
        r = BoardRenderer(surf, m, center="Trung tâm Phục vụ hành chính công phường An Khánh",
                          site="Điểm tiếp nhận chính", service_names={"ho-tich": "Hộ tịch"})
        r.draw(m.take_dirty())
        assert ALERTS not in r.layout.rects and r.drawn_alerts == ""
        m.handle(T.alert("wait", "ho-tich"), alert("wait", "ho-tich", WAIT_VI, 52))
        m.handle(T.alert("wait", "dat-dai"), alert("wait", "dat-dai", LAND_VI, 48))
        m.handle(T.alert("pause", "3"), alert("pause", "3", PAUSE_VI))
        r.draw(m.take_dirty(), t=0.1)
        strip = r.layout.rects[ALERTS]
        assert strip.height < size[1] * 0.045                       # discreet
        assert colour_count(surf, strip, ALERT_BG) > strip.height * 20    # the red badge
        assert r.drawn_alerts.startswith(WAIT_VI)                    # longest wait first
        pygame.image.save(surf, artifacts / f"alerts-board-{size[0]}x{size[1]}.png")
        # what does not fit on one line comes page by page: every message in full
        pages = []
        for i in range(r.alert_pages()):
            r.draw({ALERTS}, t=i * r.alert_page_seconds + 0.1)
            pages.append(r.drawn_alerts)
        assert 1 < len(pages) <= 3
        for msg in (WAIT_VI, LAND_VI, PAUSE_VI):
            assert any(msg in p for p in pages), msg
        for name, rect in r.layout.rects.items():
            if name != ALERTS:
                assert not rect.colliderect(strip) or name == "link", name


# ------------------------------------------------------------------ over a real broker
def test_display_shows_and_clears_alerts_from_the_broker(broker, site_config, artifacts):
    from qms.display.app import DisplayApp
    cfg = load_config(site_config)
    publish = Publisher(cfg)
    app = DisplayApp(cfg, size=(1280, 720), fullscreen=False, voice=False).start()
    try:
        assert app.link.wait_connected(10)

        def shown(pred, what):
            try:
                wait_until(pred, 10, what=what, step=lambda: app.step(0.05), every=0)
            except AssertionError as e:
                raise AssertionError(f"{e}; strip: {app.renderer.drawn_alerts!r}") from None

        shown(lambda: app.model.connected, "the link")
        publish(T.alert("wait", "ho-tich"), alert("wait", "ho-tich", WAIT_VI, 52))
        publish(T.alert("pause", "3"), alert("pause", "3", PAUSE_VI, 27, reason="họp"))
        shown(lambda: PAUSE_VI in app.renderer.drawn_alerts, "both alerts on the board")
        assert app.renderer.drawn_alerts.startswith(WAIT_VI)
        strip = app.renderer.layout.rects[ALERTS]
        assert colour_count(app.screen, strip, ALERT_BG) > 100
        pygame.image.save(app.screen, artifacts / "alerts-display-raised.png")

        for topic, payload in MALFORMED:
            publish(topic, payload)
        # barrier: one more malformed message on the same topic; once it is counted, all were
        barrier(lambda: publish(*MALFORMED[0]), lambda: app.model.malformed == len(MALFORMED) + 1,
                what="the marker counted as malformed", step=lambda: app.step(0.05))
        assert app.model.malformed == len(MALFORMED) + 1       # each counted once
        assert len(app.model.alerts) == 2 and PAUSE_VI in app.renderer.drawn_alerts   # kept

        publish(T.alert("wait", "ho-tich"), b"")
        shown(lambda: WAIT_VI not in app.renderer.drawn_alerts and PAUSE_VI in app.renderer.drawn_alerts,
              "the wait alert cleared")
        publish(T.alert("pause", "3"), b"")
        shown(lambda: ALERTS not in app.renderer.layout.rects, "the strip gone")
        assert app.renderer.drawn_alerts == ""
        # the strip's former place is the calls/services panels again: no red badge left
        assert colour_count(app.screen, make_layout(1280, 720, alerts=True).rects[ALERTS], ALERT_BG) == 0
        pygame.image.save(app.screen, artifacts / "alerts-display-cleared.png")
    finally:
        app.close()
        publish.close()


def test_counter_says_alerts_and_blinks_slowly_for_its_own(service, site_config, tmp_path, mock_pins):
    cfg = load_config(site_config)
    publish = Publisher(cfg)
    rig = CounterRig(cfg, "counter-3", 3, tmp_path)      # counter 3: ho-tich, chung-thuc, van-hoa-xa-hoi
    try:
        # an alert this counter cannot act on: a line, but the attention light stays off
        publish(T.alert("wait", "dat-dai"), alert("wait", "dat-dai", LAND_VI, 48))
        wait_until(lambda: f"CẢNH BÁO: {LAND_VI}" in rig.lines, what="the line for another service's alert")
        wait_until(lambda: any(line.endswith("Cảnh báo: 1") for line in rig.lines), what="state line")
        assert rig.lights.modes["link"] == "off"

        publish(T.alert("wait", "ho-tich"), alert("wait", "ho-tich", WAIT_VI, 52))
        wait_until(lambda: rig.lights.modes["link"] == "slow", what="slow blink for its own service")
        assert f"CẢNH BÁO: {WAIT_VI}" in rig.lines
        # the real LED on its (mock) pin blinks slowly: both states within ~2 s
        states = set()
        end = time.monotonic() + 2.5
        while time.monotonic() < end and len(states) < 2:
            states.add(rig.light("link"))
            time.sleep(0.05)
        assert states == {True, False}

        # an update of the minutes is no new line; malformed ones change nothing
        n = len(rig.lines)
        publish(T.alert("wait", "ho-tich"), alert("wait", "ho-tich", WAIT_VI, 53))
        for topic, payload in MALFORMED:
            publish(topic, payload)
        # barrier: a good update on the same topic as the malformed ones (minutes only: no line)
        barrier(lambda: publish(T.alert("wait", "dat-dai"), alert("wait", "dat-dai", LAND_VI, 49)),
                lambda: rig.terminal.alerts.alerts[("wait", "dat-dai")].value_min == 49,
                what="the marker update")
        assert [line for line in rig.lines[n:] if "CẢNH BÁO" in line] == []
        assert len(rig.terminal.alerts) == 2 and rig.lights.modes["link"] == "slow"

        publish(T.alert("wait", "ho-tich"), b"")
        wait_until(lambda: f"Hết cảnh báo: {WAIT_VI}" in rig.lines, what="cleared line")
        wait_until(lambda: rig.lights.modes["link"] == "off", what="light off")

        publish(T.alert("pause", "3"), alert("pause", "3", PAUSE_VI, 27))   # its own long pause
        wait_until(lambda: rig.lights.modes["link"] == "slow", what="slow blink for its own pause")
        publish(T.alert("pause", "3"), b"")
        publish(T.alert("wait", "dat-dai"), b"")
        wait_until(lambda: len(rig.terminal.alerts) == 0 and rig.lights.modes["link"] == "off",
                 what="all cleared")
        wait_until(lambda: "Cảnh báo" not in rig.lines[-1], what="state line without alerts")
    finally:
        rig.stop()
        publish.close()
