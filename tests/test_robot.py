"""The service robot profile: gpiozero MockFactory drives the presence sensor and records
the dispenser relay; greetings go through the real espeak-ng; status over real MQTT."""
from __future__ import annotations

import json
import time

import pytest
from support.site import make_config
from support.wait import barrier, wait_until

from qms.config.site import load_config
from qms.kiosk.app import KioskApp, run
from qms.kiosk.printing import MemoryPrinter
from qms.kiosk.robot import Greeter
from qms.kiosk.voice import SilentSpeaker, make_speaker
from qms.mqtt.client import MqttLink
from qms.sim.kiosk_testing import tap

ROBOT = """
[kiosk]
robot = true
presence = "motion"
presence_pin = 4
dispenser_pin = 27
dispenser_pulse_s = 0.05
dispenser_capacity = 2
person_gap_s = 0.5
announce_hold_s = 0.6
buttons = { "chung-thuc" = 5 }
"""



@pytest.fixture
def robot(tmp_path, broker, mock_pins, site_clock):
    path = make_config(tmp_path, broker.port, extra=ROBOT)
    cfg = load_config(path)
    app = KioskApp(cfg, "robot-1", size=(1024, 600), printer=MemoryPrinter(), speaker=SilentSpeaker(),
                   clock=site_clock).start()
    app.config_path = path
    time.sleep(0.3)         # gpiozero's smoothing queue settles its first state (no event for it)
    yield app
    app.stop()


def test_greets_once_per_person_and_not_over_announcements(robot, mock_pins, broker):
    app = robot
    pin = mock_pins.pin(4)
    assert wait_until(lambda: app.device.online, step=app.step)
    pin.drive_high()                                        # someone walks up
    assert wait_until(lambda: app.speaker.said, step=app.step)
    assert app.speaker.said == ["Xin chào, mời bạn chọn dịch vụ trên màn hình."]
    assert app.view.greeting
    pin.drive_low(); time.sleep(0.15); pin.drive_high()    # the same person, sensor flicker
    for _ in range(20):
        app.step(); time.sleep(0.02)
    assert len(app.speaker.said) == 1
    pin.drive_low()
    wait_until(lambda: not app.view.greeting, step=app.step)
    time.sleep(0.6)                                        # gone long enough: the next is a new person
    # the hall calls a number just as the next person arrives: hold the greeting
    caller = MqttLink(app.cfg.mqtt, "test-caller")
    caller.start()
    assert caller.wait_connected(5)
    caller.publish(f"qms/v1/{app.cfg.site.id}/event/ticket.called",
                   json.dumps({"type": "ticket.called", "at": 1, "ticket_id": "x" * 8, "number": 1001,
                               "service": "chung-thuc", "counter": 1}).encode())
    assert wait_until(lambda: app.greeter.quiet_until > time.monotonic(), step=app.step)
    pin.drive_high()
    t_arrive = time.monotonic()
    assert wait_until(lambda: len(app.speaker.said) == 2, step=app.step)
    assert time.monotonic() - t_arrive >= 0.2               # it waited for the announcement to end
    caller.stop()


def test_greeting_is_dropped_if_the_person_leaves_during_an_announcement():
    t = [0.0]
    spk = SilentSpeaker()
    g = Greeter(spk, "Xin chào", person_gap_s=5, announce_hold_s=8, clock=lambda: t[0])
    t[0] = 100
    g.announcement()
    g.presence(True)
    t[0] = 104
    assert not g.poll()
    g.presence(False)
    t[0] = 109
    assert not g.poll() and spk.said == []
    g.presence(True)                                         # back after 5 s: a new person
    assert g.poll() and spk.said == ["Xin chào"]


def test_dispenser_one_item_per_ticket_stock_and_refill(robot, mock_pins, broker):
    app = robot
    relay = mock_pins.pin(27)
    status: dict = {}
    stocks: list = []                                       # every stock the kiosk published, in order

    def on_status(t, p, props):
        status.update(json.loads(p))
        stocks.append(status.get("stock"))
    topic = f"qms/v1/{app.cfg.site.id}/status/robot-1"
    listener = MqttLink(app.cfg.mqtt, "test-status", subscriptions=[(topic, 1)], on_message=on_status)
    listener.start()
    try:
        assert wait_until(lambda: app.device.online and status.get("stock") == 2, step=app.step)
        assert status["online"] is True and status["printer"] == "ready" and status["kind"] == "robot"
        for _ in range(3):
            app.reset()
            tap(app, ("menu",))
            tap(app, ("service", "ho-tich"))
            assert app.view.screen == "confirm"             # a ticket even without candy
            time.sleep(0.15)                                # let the relay pulse end
        highs = [s for s in relay.states if s.state]
        assert len(highs) == 2                              # one pulse per ticket, none when empty
        assert app.stock.items() == 0
        assert wait_until(lambda: status.get("stock_state") == "out", step=app.step)
        # staff refill from the command line (another process writes the kiosk's database)
        assert run(type("A", (), {"action": "refill", "config": str(app.config_path), "device": "robot-1",
                                  "items": 7, "catalog": None})()) == 0
        assert wait_until(lambda: status.get("stock") == 7, step=app.step)
        # ... or over the admin topic
        listener.publish(f"qms/v1/{app.cfg.site.id}/admin/robot-1/refill", b'{"items": 3}')
        assert wait_until(lambda: status.get("stock") == 3, step=app.step)
        seen = len(stocks)
        listener.publish(f"qms/v1/{app.cfg.site.id}/admin/robot-1/refill", b'not json')
        listener.publish(f"qms/v1/{app.cfg.site.id}/admin/robot-1/refill", b'{"items": "lots"}')
        # barrier: a good refill on the same topic; once its stock is published, the bad ones were handled
        barrier(lambda: listener.publish(f"qms/v1/{app.cfg.site.id}/admin/robot-1/refill", b'{"items": 4}'),
                lambda: status.get("stock") == 4, what="the marker refill", step=app.step)
        assert set(stocks[seen:]) <= {3, 4}                 # bad refills changed nothing in between
    finally:
        listener.stop()


def test_physical_button_takes_a_ticket(robot, mock_pins):
    app = robot
    button = mock_pins.pin(5)
    button.drive_low()                                      # Button is active-low (pull-up)
    assert wait_until(lambda: app.view.screen == "confirm", step=app.step)
    assert app.view.ticket.service_vi.startswith("Chứng thực")


def test_sensor_dims_and_wakes_the_screen(robot, mock_pins):
    app = robot
    app.last_presence -= 1000
    app.step()
    assert app.view.screen == "dim"
    mock_pins.pin(4).drive_high()
    assert wait_until(lambda: app.view.screen == "idle", step=app.step)


def test_greeting_is_real_vietnamese_audio_through_the_display_voice(tmp_path, broker):
    """The kiosk speaks through display's voice stack: espeak-ng and pygame.mixer."""
    from qms.kiosk.voice import VoiceSpeaker
    cfg = load_config(make_config(tmp_path, broker.port, extra=ROBOT))
    spk = make_speaker(cfg)
    try:
        assert isinstance(spk, VoiceSpeaker) and spk.player is not None    # SDL's dummy audio driver
        spk.say("Xin chào, mời bạn chọn dịch vụ")
        assert wait_until(lambda: spk.said and not spk.busy(), timeout=15)
        assert spk.said == ["Xin chào, mời bạn chọn dịch vụ"]
        wav = spk.last_wav
        assert wav[:4] == b"RIFF" and len(wav) > 22050        # over half a second of speech
    finally:
        spk.close()
