"""A counter terminal against the real service over a real Mosquitto: real gpiozero
Buttons and LEDs on mock pins, the terminal's main loop on its own thread as in `qms counter`."""
from __future__ import annotations

import json
import time

import pytest
from support.counter import CounterRig, Facts
from support.mqtt import issue
from support.site import make_config
from support.wait import barrier, wait_until

from qms.config.site import load_config
from qms.mqtt.device import Device
from qms.protocol.topics import Topics


def stored(service, type_name: str) -> list:
    """Today's events of one type in the service's log."""
    return [e for e in service.store.events(day=service.core.day) if type(e).__name__ == type_name]


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
    wait_until(lambda: rig.board() == ("1001", False), what="1001 on the board")
    assert rig.light("busy")
    assert "Mời số 1001 đến quầy 1." in rig.lines

    rig.press("recall")
    wait_until(lambda: rig.board() == ("1001", True), what="blinking on recall")
    rig.display.render(*rig.board()).save(artifacts / "counter-1-recall.png")
    wait_until(lambda: len(facts.of("ticket.recalled")) == 1, what="recall fact")

    rig.press("no_show")                                       # a tap: not enough for no-show
    rig.settle()
    assert stored(service, "TicketNoShow") == [] and facts.of("ticket.no_show") == []
    rig.press("no_show", hold=1.1)                             # a long press is
    wait_until(lambda: rig.board() == ("--", False), what="idle after no-show")
    assert facts.of("ticket.no_show")[0]["number"] == 1001

    rig.press("next")
    wait_until(lambda: rig.board() == ("1002", False), what="1002")
    rig.press("done")
    wait_until(lambda: rig.board() == ("--", False), what="idle after done")
    ticket_1002 = facts.of("ticket.called")[-1]["ticket_id"]
    rig.press("rate4")
    rig.press("rate1")                                         # a second rating: ignored
    wait_until(lambda: len(facts.of("rating.submitted")) == 1, what="rating fact")
    rig.settle()
    ratings = facts.of("rating.submitted")
    assert [(r["ticket_id"], r["level"]) for r in ratings] == [(ticket_1002, 4)]
    assert "Cảm ơn quý khách đã đánh giá: Rất hài lòng." in rig.lines
    assert "Số này đã được đánh giá." in rig.lines or "Không có lượt phục vụ nào để đánh giá." in rig.lines
    assert len(stored(service, "RatingSubmitted")) == 1


def test_transfer_to_a_chosen_service_and_counter(counter1, kiosk, facts, cfg, service):
    rig = counter1
    issue(kiosk, "chung-thuc", 2)
    rig.press("next")
    wait_until(lambda: rig.board() == ("1001", False), what="1001")
    targets = rig.terminal.transfer_targets("chung-thuc")
    assert targets[0][1] == "lĩnh vực Hộ tịch (khai sinh, kết hôn, khai tử)"
    rig.press("transfer")                                      # opens on the first target
    wait_until(lambda: rig.board() == ("L-2", False), what="first target on the board")
    rig.press("transfer")
    rig.press("transfer")                                      # third target: Đất đai
    wait_until(lambda: rig.board() == ("L-4", False), what="third target")
    assert rig.terminal.chooser.index == 2
    rig.press("transfer", hold=1.1)                            # hold confirms
    wait_until(lambda: len(facts.of("ticket.transferred")) == 1, what="transfer fact")
    t = facts.of("ticket.transferred")[0]
    assert (t["number"], t["to_service"], t["to_counter"]) == (1001, targets[2][0]["to_service"], None)
    wait_until(lambda: rig.board() == ("--", False), what="idle after transfer")

    # to a counter; another key while choosing cancels and does nothing else
    rig.press("next")
    wait_until(lambda: rig.board() == ("1002", False), what="1002")
    rig.press("transfer")
    rig.press("recall")
    rig.settle()
    assert rig.terminal.chooser is None and stored(service, "TicketRecalled") == []
    assert "Đã hủy chuyển." in rig.lines
    n_services = len(cfg.services) - 1
    rig.press("transfer")
    for _ in range(n_services + 1):                            # past the services to counter 3
        rig.press("transfer")
    wait_until(lambda: rig.board() == ("Q-3", False), what="counter 3 chosen")
    rig.press("transfer", hold=1.1)
    wait_until(lambda: len(facts.of("ticket.transferred")) == 2, what="second transfer")
    assert facts.of("ticket.transferred")[1]["to_counter"] == 3


def test_pause_and_resume(counter1, kiosk, facts):
    rig = counter1
    issue(kiosk, "chung-thuc", 1)
    rig.press("pause")
    wait_until(lambda: rig.light("paused"), what="paused light")
    wait_until(lambda: rig.terminal.view["status"] == "paused", what="paused state")
    rig.press("next")                                          # the service refuses: paused
    wait_until(lambda: any("tạm nghỉ" in line for line in rig.lines if line.startswith("Không thực hiện")),
             what="refusal line")
    assert facts.of("ticket.called") == []
    time.sleep(1.5)                                            # past the repeat guard
    rig.press("pause")
    wait_until(lambda: rig.terminal.view["status"] == "open", what="resumed")
    assert not rig.light("paused")
    rig.press("next")
    wait_until(lambda: rig.board() == ("1001", False), what="called after resume")
    assert [f["type"] for f in facts.items if f["type"].startswith("counter.")] == [
        "counter.paused", "counter.resumed"]


def test_bounces_and_double_presses_call_one_ticket(counter1, kiosk, facts, service):
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
    wait_until(lambda: len(facts.of("ticket.called")) >= 1, what="one call")
    rig.settle()
    assert [e.number for e in stored(service, "TicketCalled")] == [1001]
    assert [f["number"] for f in facts.of("ticket.called")] == [1001]


def test_broker_outage_refuses_calls_and_queues_done_and_rating(counter1, kiosk, facts, broker, service):
    rig = counter1
    issue(kiosk, "chung-thuc", 3)
    rig.press("next")
    wait_until(lambda: rig.board() == ("1001", False), what="1001")
    ticket_1001 = facts.of("ticket.called")[0]["ticket_id"]
    broker.stop()
    wait_until(lambda: rig.light("link") and not rig.terminal.online, what="link light")
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
    wait_until(lambda: rig.device.outbox.count() == 0, timeout=30, what="outbox drained")
    wait_until(lambda: len(facts.of("rating.submitted")) == 1, timeout=10, what="rating applied")
    wait_until(lambda: rig.terminal.online and rig.lights.modes["link"] == "off", what="back online, link light off")
    events = [type(e).__name__ for e in service.store.events(day=service.core.day)]   # all acked: all stored
    assert events.count("TicketDone") == 1 and events.count("RatingSubmitted") == 1
    assert events.count("TicketCalled") == 1                   # the refused next never happened
    assert facts.of("rating.submitted")[0]["ticket_id"] == ticket_1001
    rig.press("next")                                          # back online: calls work again
    wait_until(lambda: rig.board() == ("1002", False), what="1002 after the outage")


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
        wait_until(lambda: "Máy chủ không trả lời: thao tác chưa thực hiện. Xin bấm lại." in rig.lines,
                 what="no-answer line")
        assert rig.device.outbox.count() == 1          # now a cmd.void: same id, no effect
        assert rig.lights.modes["link"] == "blink"
        svc = CentralService(cfg, tmp_path / "svc.sqlite").start()
        assert svc.link.wait_connected(10)
        wait_until(lambda: rig.device.outbox.count() == 0, what="the void acknowledged")
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
    # barrier: a valid alert down the same inbox; once its line is said, the bad ones were handled
    marker = {"kind": "wait", "key": "dat-dai", "message_vi": "Dấu mốc của bài kiểm thử."}
    barrier(lambda: rig.terminal.on_message(Topics(cfg.site.id).alert("wait", "dat-dai"), json.dumps(marker).encode()),
            lambda: "CẢNH BÁO: Dấu mốc của bài kiểm thử." in rig.lines, what="the marker alert's line")
    assert rig.terminal.view == before and rig.thread.is_alive()
