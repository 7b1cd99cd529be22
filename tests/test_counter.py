"""A counter terminal against the real service over a real Mosquitto: real gpiozero
Buttons and LEDs on mock pins, the terminal's main loop on its own thread as in `qms counter`."""
from __future__ import annotations

import json
import threading
import time

import pytest
from gpiozero import Device as GpioDevice
from support.mqtt import issue

from qms.config.site import load_config
from qms.counter.keys import GpioKeys, key_pins
from qms.counter.lights import GpioLights
from qms.counter.number_display import SimulatedNumberDisplay
from qms.counter.terminal import CounterTerminal, open_device
from qms.mqtt.client import MqttLink
from qms.mqtt.device import Device
from qms.protocol.topics import Topics
from tests.conftest import make_config
from tests.test_counter_keys import mock_pins  # noqa: F401 - fixture


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Facts:
    """Every fact the service publishes, as seen by an independent subscriber."""

    def __init__(self, cfg):
        self.items: list[dict] = []
        self.link = MqttLink(cfg.mqtt, "facts-watcher", subscriptions=[(Topics(cfg.site.id).all_events, 1)],
                             on_message=lambda t, p, props: self.items.append(json.loads(p)))
        self.link.start()
        assert self.link.wait_connected(10)

    def of(self, type_: str) -> list[dict]:
        return [f for f in list(self.items) if f["type"] == type_]


class CounterRig:
    def __init__(self, cfg, device_id: str, counter: int, tmp_path, png=None):
        self.factory = GpioDevice.pin_factory
        tc = cfg.counter_terminal
        self.lines: list[str] = []
        self.display = SimulatedNumberDisplay(tc.number_display, caption=f"QUẦY {counter}", png=png)
        self.lights = GpioLights(tc.lights)
        self.terminal = CounterTerminal(cfg, counter, self.display, self.lights, say=self.lines.append)
        self.pins = key_pins(tc.buttons)
        self.keys = GpioKeys(self.pins, self.terminal.post_edge, time.monotonic)
        self.device = open_device(cfg, device_id, self.terminal,
                                  outbox_path=tmp_path / f"{device_id}.outbox.sqlite").start()
        assert self.device.link.wait_connected(10)
        self._run = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        wait_for(lambda: self.terminal.view is not None, what="retained counter state")

    def _loop(self):
        while self._run and self.terminal.step(0.01):
            pass

    def pin(self, key):
        return self.factory.pin(self.pins[key])

    def press(self, key, hold=0.08):
        p = self.pin(key)
        p.drive_low()
        time.sleep(hold)
        p.drive_high()
        time.sleep(0.06)                       # past the debounce quiet time

    def light(self, name) -> bool:
        return self.factory.pin(getattr(self.terminal.tc.lights, name)).state

    def board(self):
        """What the board shows (text without the alignment padding, blinking)."""
        text, blink = self.display.last
        return text.strip(), blink

    def stop(self):
        self._run = False
        self.thread.join(2)
        self.device.stop()
        self.keys.close()
        self.lights.close()


@pytest.fixture
def cfg(site_config):
    return load_config(site_config)


@pytest.fixture
def kiosk(cfg, tmp_path):
    k = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp_path / "kiosk.sqlite").start()
    assert k.link.wait_connected(10)
    yield k
    k.stop()




@pytest.fixture
def counter1(cfg, service, mock_pins, tmp_path, artifacts):
    rig = CounterRig(cfg, "counter-1", 1, tmp_path, png=artifacts / "counter-1-live.png")
    yield rig
    rig.stop()


@pytest.fixture
def facts(cfg, service):
    f = Facts(cfg)
    yield f
    f.link.stop()


def test_next_recall_no_show_done_and_rating(counter1, kiosk, facts, service, artifacts):
    rig = counter1
    assert rig.display.last == ("  --", False)                 # idle, right-aligned
    assert not rig.light("busy")
    issue(kiosk, "chung-thuc", 3)
    rig.press("next")
    wait_for(lambda: rig.board() == ("1001", False), what="1001 on the board")
    assert rig.light("busy")
    assert "Mời số 1001 đến quầy 1." in rig.lines

    rig.press("recall")
    wait_for(lambda: rig.board() == ("1001", True), what="blinking on recall")
    rig.display.render(*rig.board()).save(artifacts / "counter-1-recall.png")
    wait_for(lambda: len(facts.of("ticket.recalled")) == 1, what="recall fact")

    rig.press("no_show")                                       # a tap: not enough for no-show
    time.sleep(0.2)
    assert facts.of("ticket.no_show") == []
    rig.press("no_show", hold=1.1)                             # a long press is
    wait_for(lambda: rig.board() == ("--", False), what="idle after no-show")
    assert facts.of("ticket.no_show")[0]["number"] == 1001

    rig.press("next")
    wait_for(lambda: rig.board() == ("1002", False), what="1002")
    rig.press("done")
    wait_for(lambda: rig.board() == ("--", False), what="idle after done")
    ticket_1002 = facts.of("ticket.called")[-1]["ticket_id"]
    rig.press("rate4")
    rig.press("rate1")                                         # a second rating: ignored
    wait_for(lambda: len(facts.of("rating.submitted")) == 1, what="rating fact")
    time.sleep(0.3)
    ratings = facts.of("rating.submitted")
    assert [(r["ticket_id"], r["level"]) for r in ratings] == [(ticket_1002, 4)]
    assert "Cảm ơn quý khách đã đánh giá: Rất hài lòng." in rig.lines
    assert "Số này đã được đánh giá." in rig.lines or "Không có lượt phục vụ nào để đánh giá." in rig.lines
    stored = [e for e in service.store.events(day=service.core.day) if type(e).__name__ == "RatingSubmitted"]
    assert len(stored) == 1


def test_transfer_to_a_chosen_service_and_counter(counter1, kiosk, facts, cfg):
    rig = counter1
    issue(kiosk, "chung-thuc", 2)
    rig.press("next")
    wait_for(lambda: rig.board() == ("1001", False), what="1001")
    targets = rig.terminal.transfer_targets("chung-thuc")
    assert targets[0][1] == "lĩnh vực Hộ tịch (khai sinh, kết hôn, khai tử)"
    rig.press("transfer")                                      # opens on the first target
    wait_for(lambda: rig.board() == ("L-2", False), what="first target on the board")
    rig.press("transfer")
    rig.press("transfer")                                      # third target: Đất đai
    wait_for(lambda: rig.board() == ("L-4", False), what="third target")
    assert rig.terminal.chooser.index == 2
    rig.press("transfer", hold=1.1)                            # hold confirms
    wait_for(lambda: len(facts.of("ticket.transferred")) == 1, what="transfer fact")
    t = facts.of("ticket.transferred")[0]
    assert (t["number"], t["to_service"], t["to_counter"]) == (1001, targets[2][0]["to_service"], None)
    wait_for(lambda: rig.board() == ("--", False), what="idle after transfer")

    # to a counter; another key while choosing cancels and does nothing else
    rig.press("next")
    wait_for(lambda: rig.board() == ("1002", False), what="1002")
    rig.press("transfer")
    rig.press("recall")
    time.sleep(0.2)
    assert rig.terminal.chooser is None and facts.of("ticket.recalled") == []
    assert "Đã hủy chuyển." in rig.lines
    n_services = len(cfg.services) - 1
    rig.press("transfer")
    for _ in range(n_services + 1):                            # past the services to counter 3
        rig.press("transfer")
    wait_for(lambda: rig.board() == ("Q-3", False), what="counter 3 chosen")
    rig.press("transfer", hold=1.1)
    wait_for(lambda: len(facts.of("ticket.transferred")) == 2, what="second transfer")
    assert facts.of("ticket.transferred")[1]["to_counter"] == 3


def test_pause_and_resume(counter1, kiosk, facts):
    rig = counter1
    issue(kiosk, "chung-thuc", 1)
    rig.press("pause")
    wait_for(lambda: rig.light("paused"), what="paused light")
    wait_for(lambda: rig.terminal.view["status"] == "paused", what="paused state")
    rig.press("next")                                          # the service refuses: paused
    wait_for(lambda: any("tạm nghỉ" in line for line in rig.lines if line.startswith("Không thực hiện")),
             what="refusal line")
    assert facts.of("ticket.called") == []
    time.sleep(1.5)                                            # past the repeat guard
    rig.press("pause")
    wait_for(lambda: rig.terminal.view["status"] == "open", what="resumed")
    assert not rig.light("paused")
    rig.press("next")
    wait_for(lambda: rig.board() == ("1001", False), what="called after resume")
    assert [f["type"] for f in facts.items if f["type"].startswith("counter.")] == [
        "counter.paused", "counter.resumed"]


def test_bounces_and_double_presses_call_one_ticket(counter1, kiosk, facts):
    rig = counter1
    issue(kiosk, "chung-thuc", 4)
    pin = rig.pin("next")
    for _ in range(5):                                         # contact chatter
        pin.drive_low()
        time.sleep(0.002)
        pin.drive_high()
        time.sleep(0.002)
    pin.drive_low()
    time.sleep(0.1)
    pin.drive_high()
    time.sleep(0.15)
    rig.press("next")                                          # an impatient double tap
    rig.press("next")
    wait_for(lambda: len(facts.of("ticket.called")) >= 1, what="one call")
    time.sleep(0.5)
    assert [f["number"] for f in facts.of("ticket.called")] == [1001]


def test_broker_outage_refuses_calls_and_queues_done_and_rating(counter1, kiosk, facts, broker, service):
    rig = counter1
    issue(kiosk, "chung-thuc", 3)
    rig.press("next")
    wait_for(lambda: rig.board() == ("1001", False), what="1001")
    ticket_1001 = facts.of("ticket.called")[0]["ticket_id"]
    broker.stop()
    wait_for(lambda: rig.light("link") and not rig.terminal.online, what="link light")
    rig.press("next")                                          # refused, with an indication
    assert "Mất kết nối máy chủ: chưa gọi được. Xin chờ kết nối lại rồi bấm lại." in rig.lines
    assert rig.lights.modes["link"] == "blink"
    rig.press("done")                                          # queued durably
    assert "Mất kết nối: đã lưu, sẽ gửi khi có kết nối lại." in rig.lines
    assert rig.board() == ("--", False)
    rig.press("rate3")                                         # queued, bound to 1001
    rig.press("done")                                          # nothing is served now: no second done
    assert rig.device.outbox.count() == 2
    broker.start()
    facts.link.wait_connected(20)
    wait_for(lambda: rig.device.outbox.count() == 0, timeout=30, what="outbox drained")
    wait_for(lambda: len(facts.of("rating.submitted")) == 1, timeout=10, what="rating applied")
    wait_for(lambda: not rig.light("link"), what="link light off")
    time.sleep(0.5)
    events = [type(e).__name__ for e in service.store.events(day=service.core.day)]
    assert events.count("TicketDone") == 1 and events.count("RatingSubmitted") == 1
    assert events.count("TicketCalled") == 1                   # the refused next never happened
    assert facts.of("rating.submitted")[0]["ticket_id"] == ticket_1001
    rig.press("next")                                          # back online: calls work again
    wait_for(lambda: rig.board() == ("1002", False), what="1002 after the outage")


def test_unanswered_call_is_withdrawn_not_applied_later(broker, tmp_path, mock_pins):
    """Broker up, service down: the call times out, is withdrawn, and a service that starts
    later never calls anyone for it."""
    from qms.service.app import CentralService
    path = make_config(tmp_path, broker.port, extra="[counter_terminal]\ncall_timeout_s = 1.0\n")
    cfg = load_config(path)
    svc = CentralService(cfg, tmp_path / "svc.sqlite").start()
    assert svc.link.wait_connected(10)
    kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp_path / "kiosk.sqlite").start()
    issue(kiosk, "chung-thuc", 1)
    rig = CounterRig(cfg, "counter-2", 2, tmp_path)
    svc.stop()
    try:
        rig.press("next")
        assert rig.device.outbox.count() == 1
        wait_for(lambda: "Máy chủ không trả lời: thao tác chưa thực hiện. Xin bấm lại." in rig.lines,
                 what="no-answer line")
        assert rig.device.outbox.count() == 1          # now a cmd.void: same id, no effect
        assert rig.lights.modes["link"] == "blink"
        svc = CentralService(cfg, tmp_path / "svc.sqlite").start()
        assert svc.link.wait_connected(10)
        wait_for(lambda: rig.device.outbox.count() == 0, what="the void acknowledged")
        assert [type(e).__name__ for e in svc.store.events(day=svc.core.day)].count("TicketCalled") == 0
        assert rig.board() == ("--", False)
    finally:
        rig.stop()
        kiosk.stop()
        svc.stop()


def test_bad_state_payload_is_ignored(counter1, cfg):
    rig = counter1
    topic = Topics(cfg.site.id).counter_state(1)
    before = rig.terminal.view
    rig.terminal.on_message(topic, b"not json")
    rig.terminal.on_message(topic, b'{"counter": 5}')
    rig.terminal.on_message(topic, b"[1, 2]")
    time.sleep(0.1)
    assert rig.terminal.view == before and rig.thread.is_alive()
