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
    assert retained_alerts(cfg) == {}


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
