"""Staff alerts: retained on the real broker while true, cleared (empty retained) when resolved."""
from __future__ import annotations

import pytest
from support.site import make_config
from support.wait import wait_until
from support.web import WEB_EXTRA, counter, retained_alerts, start_web, take

from qms.config.site import load_config
from qms.mqtt.client import MqttLink
from qms.protocol.topics import Topics


@pytest.fixture
def site_config(tmp_path, broker):       # the shared site plus a [web] section
    return make_config(tmp_path, broker.port, extra=WEB_EXTRA)



def test_long_wait_and_long_pause_raise_and_clear_alerts(web, devices, site_config, site_clock):
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    take(devices, "ho-tich")
    counter(devices, 5, "counter.pause")
    site_clock.advance(10 * 60)
    wait_until(lambda: web.alerts.check(site_clock()) == {})       # under both limits: nothing
    assert retained_alerts(cfg) == {}

    site_clock.advance(36 * 60)     # 46 min waiting (target 45), 46 min paused (allowed 20)
    wait_until(lambda: len(web.alerts.check(site_clock())) == 2)
    alerts = wait_until(lambda: (a := retained_alerts(cfg)) and len(a) == 2 and a)
    wait = alerts[topics.alert("wait", "ho-tich")]
    assert wait["active"] and wait["value_min"] == 46 and wait["target_min"] == 45
    assert wait["message_vi"] == "Hộ tịch (khai sinh, kết hôn, khai tử): có người đã chờ 46 phút (mục tiêu 45 phút)."
    pause = alerts[topics.alert("pause", "5")]
    assert pause["message_vi"] == "Quầy 5 đã tạm nghỉ 46 phút (cho phép 20 phút)."

    counter(devices, 5, "counter.resume")
    counter(devices, 3)                           # the long-waiting ticket is called
    wait_until(lambda: web.alerts.check(site_clock()) == {})
    # the clears are published through the web's MQTT link (queued, not awaited by check()):
    # wait for the broker to hold them, as a display connecting a moment later would see
    wait_until(lambda: retained_alerts(cfg) == {}, 10)


def test_alerts_left_by_a_previous_run_are_cleared(service, site_config, tmp_path, site_clock):
    cfg = load_config(site_config)
    stale = Topics(cfg.site.id).alert("pause", "9")
    link = MqttLink(cfg.mqtt, "old-run").start()
    assert link.wait_connected(10)
    link.publish(stale, b'{"v":1,"active":true,"kind":"pause","key":"9"}', retain=True).wait_for_publish(5)
    link.stop()
    assert stale in retained_alerts(cfg)
    app = start_web(site_config, tmp_path, site_clock)    # a new run learns it from the broker...
    try:
        wait_until(lambda: not retained_alerts(cfg), 10)      # ...and clears it: nothing is paused
    finally:
        app.stop()


def test_a_device_sending_garbage_shows_on_the_alerts_page(web, devices, site_config, site_clock, browser):
    """The service's alert/device/<dev> (invalid and refused messages per device, today) is
    on the staff alerts page with the web's own alerts, in Vietnamese, and the web never
    clears it (it is the service's). Garbage from a raw paho client, through the broker."""
    import re

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from support.layout import keep_png
    from support.web import call

    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    status, page, _ = call(web, "GET", f"/alerts/{cfg.site.id}")
    assert status == 200 and "Không có cảnh báo nào." in page["html"]

    counter(devices, 5, "counter.pause")
    bad = paho.Client(CallbackAPIVersion.VERSION2, client_id="kiosk-1-broken", protocol=paho.MQTTv5)
    bad.connect("127.0.0.1", cfg.mqtt.port)
    bad.loop_start()
    try:
        topic = topics.command("kiosk", "kiosk-1")
        for payload in (b"not json", b'{"v":1,"id":"broken-0001","dev":"kiosk-1","seq":1,"type":"ticket.request"}',
                        b"x" * 20_000):
            bad.publish(topic, payload, qos=1).wait_for_publish(5)
        bad.publish(topics.command("kiosk", "kiosk-7"), b'{"v":1,"id":"unlisted-01","dev":"kiosk-7","seq":1,'
                    b'"ts":1,"type":"ticket.request","service":"ho-tich"}', qos=1).wait_for_publish(5)
    finally:
        bad.disconnect()
        bad.loop_stop()
    site_clock.advance(21 * 60)                    # and a counter paused too long: both kinds together

    def text() -> str:
        web.alerts.check(site_clock())
        html = call(web, "GET", f"/alerts/{cfg.site.id}")[1]["html"]
        vi = re.sub(r'<span lang="en">.*?</span>', "", html)
        return re.sub(r"<[^>]+>", "", vi)

    want = ("Thiết bị kiosk-1 hôm nay đã gửi 3 thông điệp không hợp lệ (lần gần nhất: thông điệp quá lớn). "
            "Cần kiểm tra thiết bị.")
    wait_until(lambda: want in text(), 10)
    body = text()
    assert "Thiết bị kiosk-7 hôm nay đã gửi 1 thông điệp bị từ chối (lần gần nhất: thiết bị chưa được " \
           "khai báo)" in body
    assert "Quầy 5 đã tạm nghỉ 21 phút (cho phép 20 phút)." in body
    assert body.index("Quầy 5") < body.index("kiosk-1")           # the web's own first, then devices
    for _ in range(3):                                              # the web never clears the service's
        web.alerts.check(site_clock())
    alerts = retained_alerts(cfg)
    assert alerts[topics.alert("device", "kiosk-1")]["invalid"] == 3
    assert topics.alert("pause", "5") in alerts

    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    shown = ctx.new_page()
    shown.goto(f"{web.url}/alerts/{cfg.site.id}")
    assert shown.locator("li.alert-device").count() == 2 and shown.locator("li.alert-pause").count() == 1
    from io import BytesIO

    from PIL import Image
    keep_png(Image.open(BytesIO(shown.screenshot(full_page=False))), "web-alerts-1280x720")
    ctx.close()
