"""The MicroPython counter box's logic under CPython, on simulated parts.

The service here is the real one (CentralService: queue core, refusals, dedup by id,
event log) with its MQTT publishing pointed at the in-memory broker, so every command
the box makes is judged by the same code as in production.
"""
from __future__ import annotations

import json

import pytest
from support.site import make_config

from qms.config.site import load_config
from qms.firmware import config, protocol, segments, storage
from qms.firmware.keys import KeyPad, MatrixKeys, PinKeys
from qms.firmware.led import StatusLed
from qms.firmware.link import MqttLink
from qms.firmware.outbox import Outbox
from qms.firmware.testing import fakes
from qms.firmware.testing.rig import Rig, base_config
from qms.protocol import messages as m
from qms.service.app import CentralService


# ------------------------------------------------------------------ the service on the fake broker
class FakeBrokerService:
    """CentralService with its link replaced by the in-memory broker."""

    def __init__(self, tmp_path, broker: fakes.FakeBroker, clock):
        cfg = load_config(make_config(tmp_path, 1))
        self.svc = CentralService(cfg, tmp_path / "svc.sqlite", clock=clock)
        self.svc.link.publish = self._publish
        self.broker = broker
        self.inbox = fakes.FakeMqttClient(broker, "service")
        self.inbox.set_callback(lambda t, p: self.batch.append((t.decode(), p, None)))
        self.inbox.connect()
        self.inbox.subscribe("qms/v1/+/cmd/+/+")
        self.batch = []
        self.paused = False
        self.svc.publish_state(everything=True)

    def _publish(self, topic, payload, qos=1, retain=False, correlation=None):
        self.broker.publish(topic, payload, retain)

    def reconnect(self):
        """After the broker restarted: subscribe again and republish retained state."""
        self.inbox = fakes.FakeMqttClient(self.broker, "service")
        self.inbox.set_callback(lambda t, p: self.batch.append((t.decode(), p, None)))
        self.inbox.connect()
        self.inbox.subscribe("qms/v1/+/cmd/+/+")
        self.svc._published.clear()
        self.svc.publish_state(everything=True)

    def __call__(self):
        if self.paused or not self.broker.up:
            return
        while self.inbox.queue:
            self.inbox.check_msg()
        if self.batch:
            batch, self.batch = self.batch, []
            self.svc.process(batch)

    def issue(self, n=3, service="chung-thuc"):
        core = self.svc.core
        out = []
        for _ in range(n):
            events = core.issue(self.svc.clock(), service, None, f"ticket-{service}-{len(core.tickets):03d}")
            self.svc._apply(events)
            out.append(events[0].number)
        self.svc.store.commit()
        self.svc.publish_state()
        return out

    def events(self, type_):
        return [e for e in self.svc.store.events(day=self.svc.core.day) if m.type_of(e) == type_]


@pytest.fixture
def rig(tmp_path, site_clock):
    r = Rig()
    r.service = FakeBrokerService(tmp_path, r.broker, site_clock)
    r.between = r.service
    r.run(100)
    assert r.box.link.online
    yield r
    r.service.svc.store.close()


# ------------------------------------------------------------------ protocol
def test_every_command_the_box_makes_passes_the_services_decoder():
    fields = {"counter.transfer": [{"to_service": "ho-tich"}, {"to_counter": 2}],
              "rating.submit": [{"ticket_id": "ticket-abcdef", "level": 4}],
              "counter.pause": [{"reason": "nghỉ trưa"}, None]}
    for type_ in protocol.COMMANDS.values():
        for f in fields.get(type_, [None]):
            msg = protocol.command(type_, "counter-3", "0badcafe", 7, 1795485600000, f)
            cmd = m.decode_command(protocol.encode(msg))
            assert m.type_of(cmd) == type_ and cmd.id == msg["id"] and cmd.seq == 7


def test_message_ids_fit_the_pattern_at_the_limits():
    longest = protocol.message_id("d" * 40, "ffffffff", 2**53)
    assert len(longest) == 64 and protocol.valid_id(longest)
    assert protocol.valid_id(protocol.message_id("c", "00000000", 0))
    m.decode_command(protocol.encode(protocol.command("counter.next", "d" * 40, "ffffffff", 2**53, 0)))
    assert not protocol.valid_id("short") and not protocol.valid_id("a b" * 5) and not protocol.valid_id(None)


def test_acks_and_states_that_are_garbage_are_ignored():
    for bad in (b"", b"\xff\xfe", b"[1]", b'{"id": 5, "ok": true}', b"null", b'{"id": "x"}'):
        assert protocol.parse_ack(bad) is None
    for bad in (b"{", b'{"counter": 4, "status": "open", "serving": null}',
                b'{"counter": 3, "status": "weird", "serving": null}',
                b'{"counter": 3, "status": "open", "serving": {"number": "1005"}}'):
        assert protocol.parse_counter_state(bad, 3) is None
    assert protocol.parse_counter_state(b'{"counter": 3, "status": "open", "serving": null}', 3) == ("open", None)


def test_a_served_tickets_paper_number_is_kept_only_when_it_is_one():
    def printed(value) -> object:
        serving = {"ticket_id": "t", "number": 2001, "printed_number": value}
        return protocol.parse_counter_state(json.dumps({"counter": 3, "status": "open", "serving": serving}),
                                            3)[1]["printed_number"]
    assert printed(2950) == 2950
    for bad in (None, "2950", True, 0, -5, 2001, 29.5, [2950]):      # a bad one is dropped, the state kept
        assert printed(bad) is None, bad


# ------------------------------------------------------------------ display drivers
def test_tm1637_bus_shows_the_number_and_brightness():
    clk, dio = fakes.FakePin(), fakes.FakePin()
    bus = fakes.TM1637Bus(clk, dio)
    segments.TM1637(clk, dio, lambda us: None, brightness=5).show(segments.render("1005"))
    assert bus.cells == [0x06, 0x3F, 0x3F, 0x6D] and bus.on and bus.brightness == 5
    assert bus.frames == [[0x40], [0xC0, 0x06, 0x3F, 0x3F, 0x6D], [0x8D]]


def test_max7219_bus_shows_the_same_cells():
    din, clk, cs = fakes.FakePin(0), fakes.FakePin(0), fakes.FakePin(1)
    bus = fakes.MAX7219Bus(din, clk, cs)
    drv = segments.MAX7219(din, clk, cs, lambda us: None)
    for text in ("1005", "L-2", "Err", "8.8.8.8."):
        drv.show(segments.render(text))
        assert bus.cells() == segments.render(text)
    assert bus.registers[0x0C] == 1 and bus.registers[0x09] == 0 and bus.registers[0x0B] == 3


def test_render_aligns_right_keeps_the_end_and_blanks_unknown_letters():
    assert segments.render("L-2") == [0, 0x38, 0x40, 0x5B]
    assert segments.render("12345") == segments.render("2345")
    assert segments.render("1.5") == [0, 0, 0x06 | 0x80, 0x6D]
    assert segments.render("Đ") == [0, 0, 0, 0]


def test_board_writes_the_chip_only_on_change():
    clk, dio = fakes.FakePin(), fakes.FakePin()
    bus = fakes.TM1637Bus(clk, dio)
    board = segments.Board(segments.TM1637(clk, dio, lambda us: None))
    for _ in range(5):
        board.show("1005")
    board.show("1005", lit=False)
    assert len(bus.frames) == 6 and bus.cells == [0, 0, 0, 0]


# ------------------------------------------------------------------ keys
def test_bouncing_contact_gives_one_press_and_a_long_hold_one_hold():
    clock = fakes.FakeClock()
    pin = fakes.FakePin(1)
    pad = KeyPad([PinKeys({"next": pin})], clock, debounce_ms=30, long_ms=1000)
    events = []
    for level in (0, 1, 0, 1, 0, 1, 0):          # 2 ms chatter
        pin.value(level)
        events += pad.poll()
        clock.advance(2)
    for _ in range(150):                          # held 1.5 s
        events += pad.poll()
        clock.advance(10)
    for level in (1, 0, 1):
        pin.value(level)
        events += pad.poll()
        clock.advance(2)
    for _ in range(10):
        events += pad.poll()
        clock.advance(10)
    assert events == [("down", "next"), ("hold", "next"), ("up", "next", True)]


def test_a_glitch_shorter_than_the_debounce_time_is_no_press():
    clock = fakes.FakeClock()
    pin = fakes.FakePin(1)
    pad = KeyPad([PinKeys({"done": pin})], clock, debounce_ms=30)
    pin.value(0)
    pad.poll()
    clock.advance(20)
    pad.poll()
    pin.value(1)
    events = []
    for _ in range(10):
        clock.advance(10)
        events += pad.poll()
    assert events == []


def test_matrix_keypad_finds_the_key_at_row_and_column():
    clock = fakes.FakeClock()
    rows = [fakes.FakePin(1) for _ in range(4)]
    cols = [fakes.FakePin(1) for _ in range(4)]
    wiring = fakes.MatrixWiring(rows, cols)
    keys = MatrixKeys(rows, cols, ["123A", "456B", "789C", "*0#D"],
                      {"A": "next", "B": "recall", "D": "done", "*": "transfer", "1": "rate1"})
    pad = KeyPad([keys], clock, debounce_ms=20)
    wiring.press(3, 3)                            # D
    events = []
    for _ in range(5):
        events += pad.poll()
        clock.advance(10)
    wiring.release(3, 3)
    wiring.press(0, 0)                            # 1
    for _ in range(5):
        events += pad.poll()
        clock.advance(10)
    assert [e[:2] for e in events] == [("down", "done"), ("up", "done"), ("down", "rate1")]


def test_debounce_survives_the_ticks_wrapping_around():
    clock = fakes.FakeClock(start=fakes.TICKS_PERIOD - 15)
    pin = fakes.FakePin(1)
    pad = KeyPad([PinKeys({"next": pin})], clock, debounce_ms=30, long_ms=1000)
    pin.value(0)
    events = []
    for _ in range(10):
        events += pad.poll()
        clock.advance(10)
    assert events == [("down", "next")] and clock.ticks_ms() < 100


# ------------------------------------------------------------------ LED
def test_led_patterns():
    clock = fakes.FakeClock()
    pin = fakes.FakePin(0)
    led = StatusLed(pin, clock)

    def levels(mode, ms):
        led.set(mode)
        out = []
        for _ in range(ms // 50):
            led.tick()
            out.append(pin.level)
            clock.advance(50)
        return out
    assert set(levels("on", 500)) == {1} and set(levels("off", 500)) == {0}
    fast, slow = levels("link_down", 2000), levels("paused", 4000)
    changes = lambda xs: sum(1 for a, b in zip(xs, xs[1:]) if a != b)
    assert changes(fast) >= 8 and 2 <= changes(slow) <= 4
    inverted = StatusLed(fakes.FakePin(1), clock, active_low=True)
    inverted.set("on")
    inverted.tick()
    assert inverted.pin.level == 0


# ------------------------------------------------------------------ config
def test_config_defaults_and_clear_errors():
    c = config.load(json.dumps(base_config()))
    assert c.mqtt_user == "counter-3" and c.debounce_ms == 30 and c.transfer[0] == ({"to_service": "ho-tich"}, "L-2")
    bad = {
        "{": "not valid JSON",
        json.dumps(base_config(counter="3")): "counter must be a whole number",
        json.dumps(base_config(counter=0)): "counter must be between 1 and 99",
        json.dumps(base_config(device="Counter 3")): "device must be 1-40",
        json.dumps(base_config(keys={"pins": {"nxt": 4}})): "unknown key 'nxt'",
        json.dumps(base_config(keys={})): "the box has no keys",
        json.dumps(base_config(display={"kind": "lcd"})): "display.kind must be",
        json.dumps(base_config(display={"kind": "max7219", "din": 1, "clk": 2})): "display.cs is missing",
        json.dumps(base_config(timing={"debounce": 3})): "timing.debounce is not a setting",
        json.dumps(base_config(transfer=[{"to_counter": 2}])): "needs \"show\"",
        json.dumps(base_config(mqtt={"port": 70000})): "mqtt.port must be between",
    }
    for text, expected in bad.items():
        with pytest.raises(config.ConfigError) as e:
            config.load(text)
        assert expected in str(e.value), (text, str(e.value))


# ------------------------------------------------------------------ outbox and link
def test_seq_and_queued_commands_survive_a_reboot_with_the_same_ids():
    store, clock = storage.MemoryStore(), fakes.FakeClock()
    box = Outbox(store, "counter-3", lambda: 0x1234ABCD, clock)
    box.add("counter.next", None, True)
    done = box.add("counter.done", None, False)
    rate = box.add("rating.submit", {"ticket_id": "ticket-123456", "level": 4}, False)
    again = Outbox(store, "counter-3", lambda: 0x99999999, clock)
    assert again.epoch == "1234abcd" and again.seq == 3
    assert [e.id for e in again.entries] == [done.id, rate.id]   # the call is not kept
    assert again.add("counter.next", None, True).msg["seq"] == 4


def test_a_damaged_outbox_file_starts_a_new_epoch_so_ids_never_repeat():
    store, clock = storage.MemoryStore({"outbox.json": '{"epoch": "zz", "seq": -1}'}), fakes.FakeClock()
    box = Outbox(store, "counter-3", lambda: 0x0BADCAFE, clock)
    assert box.epoch == "0badcafe" and box.seq == 0 and "unreadable" in box.problem
    assert box.add("counter.next", None, True).id == "counter-3-0badcafe-1"


def test_file_store_writes_atomically(tmp_path):
    s = storage.FileStore(str(tmp_path))
    assert s.read("x.json") is None
    s.write("x.json", "1")
    s.write("x.json", "22")
    assert s.read("x.json") == "22" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_link_backs_off_with_jitter_pings_and_comes_back():
    clock, broker, net = fakes.FakeClock(), fakes.FakeBroker(), fakes.FakeNetwork(up=False)
    clients = []

    def factory():
        clients.append(fakes.FakeMqttClient(broker))
        return clients[-1]
    link = MqttLink(factory, clock, lambda: 7, subscriptions=[("a/#", 1)], network=net,
                    will=("s/dev", b'{"online": false}'), online_payload=lambda: b'{"online": true}',
                    keepalive_s=10, log=lambda s: None)
    attempts = []
    for _ in range(6000):                          # 60 s without Wi-Fi
        if link.poll() is False and link.failures and (not attempts or attempts[-1] != link.failures):
            attempts.append(link.failures)
        clock.advance(10)
    assert not link.online and 5 <= link.failures <= 8 and clients == []
    net.is_up = True
    for _ in range(3100):
        link.poll()
        clock.advance(10)
    assert link.online and broker.retained["s/dev"] == b'{"online": true}'
    assert clients[-1].pings >= 5                  # every keepalive/2 over 31 s
    broker.publish("a/b", b"hello")
    link.poll()
    assert link.take() == [("a/b", b"hello")]
    clients[-1].kill()
    assert broker.retained["s/dev"] == b'{"online": false}'
    link.poll()
    assert not link.online


# ------------------------------------------------------------------ the box against the real service core
def test_next_shows_the_number_called_and_led_is_steady(rig):
    numbers = rig.service.issue(3)
    rig.press("next")
    rig.run(100)
    assert rig.shown() == str(numbers[0])
    called = rig.service.events("ticket.called")
    assert [e.number for e in called] == [numbers[0]] and called[0].counter == 3
    assert rig.box.led_mode() == "on" and rig.led_pin.level == 1


def test_double_press_and_bounces_never_call_two_tickets(rig):
    rig.service.issue(3)
    rig.press("next")
    rig.press("next")                 # within the repeat guard
    rig.run(100)
    assert len(rig.service.events("ticket.called")) == 1
    assert any("repeated press" in line for line in rig.lines)
    rig.run(1500)
    rig.press("next")
    rig.run(100)
    assert len(rig.service.events("ticket.called")) == 2


def test_recall_blinks_no_show_needs_a_long_press(rig):
    n = rig.service.issue(2)
    rig.press("next")
    rig.run(100)
    rig.press("recall")
    seen = set()
    for _ in range(40):
        rig.run(50)
        seen.add(rig.shown())
    assert seen == {str(n[0]), ""} and len(rig.service.events("ticket.recalled")) == 1
    rig.press("no_show")              # short: nothing
    rig.run(100)
    assert rig.service.events("ticket.no_show") == []
    rig.hold("no_show")
    rig.run(100)
    assert [e.number for e in rig.service.events("ticket.no_show")] == [n[0]]
    assert rig.shown() == "----"


def test_transfer_chooser_cycles_confirms_with_a_hold_and_cancels_on_other_keys(rig):
    n = rig.service.issue(2)
    rig.press("next")
    rig.run(100)
    rig.press("transfer")
    assert rig.shown() == "L-2"
    rig.press("transfer")
    assert rig.shown() == "q-2"
    rig.press("done")                 # cancels, and only cancels
    assert rig.shown() == str(n[0]) and rig.service.events("ticket.done") == []
    rig.press("transfer")
    rig.hold("transfer")              # hold while the chooser is open: send L-2
    rig.run(100)
    t = rig.service.events("ticket.transferred")
    assert [(e.number, e.to_service) for e in t] == [(n[0], "ho-tich")]
    assert rig.shown() == "----"


def test_the_chooser_leaves_out_the_service_the_ticket_is_in(rig):
    rig.service.issue(1, service="ho-tich")
    rig.press("next")
    rig.run(100)
    rig.press("transfer")
    assert rig.shown() == "q-2"          # L-2 is ho-tich itself
    rig.press("transfer")
    assert rig.shown() == "q-2"


def test_make_config_builds_what_the_box_accepts():
    from support.site import TEST_CONFIG

    from qms.cli import firmware as make_config
    site = load_config(TEST_CONFIG)
    cfg = make_config.build(site, "counter-3", "pico", "TTHC", "pw", "192.168.1.10", 1883, "s3cret")
    box_cfg = config.load(json.dumps(cfg))
    assert box_cfg.counter == 3 and box_cfg.mqtt_user == "counter-3" and box_cfg.display_pins == {"clk": 14, "dio": 15}
    shows = [t[1] for t in box_cfg.transfer]
    assert shows[:3] == ["L-1", "L-2", "L-3"] and "q-3" not in shows and "q-6" in shows
    with pytest.raises(SystemExit, match="not a counter device"):
        make_config.build(site, "kiosk-1", "esp32", "", "", "h", 1883, None)


def test_pause_and_resume_follow_the_service_state(rig):
    rig.press("pause")
    rig.run(100)
    assert rig.box.status == "paused" and rig.box.led_mode() == "paused"
    rig.run(1600)
    rig.press("pause")
    rig.run(100)
    assert rig.box.status == "open"
    assert [m.type_of(e) for e in rig.service.svc.store.events(day=rig.service.svc.core.day)][-2:] == \
        ["counter.paused", "counter.resumed"]


def test_a_refusal_flashes_err_and_the_alarm(rig):
    rig.press("pause")
    rig.run(1600)
    rig.press("next")                 # refused: counter paused
    rig.run(30)
    assert rig.shown() == "Err" and rig.box.led_mode() == "alarm"
    assert any("counter_paused" in line for line in rig.lines)
    rig.run(3500)
    assert rig.shown() == "----" and rig.box.led_mode() == "paused"


def test_rating_after_done_is_bound_to_that_ticket_once(rig):
    rig.service.issue(2)
    rig.press("next")
    rig.run(100)
    ticket = rig.box.serving()["ticket_id"]
    rig.press("done")
    rig.run(100)
    rig.press("rate4")
    rig.press("rate1")                # second rating for the same ticket: ignored
    rig.run(100)
    rated = rig.service.events("rating.submitted")
    assert [(e.ticket_id, e.level) for e in rated] == [(ticket, 4)]
    assert len(rig.sent("rating.submit")) == 1


def test_rating_keys_do_nothing_after_the_window(rig):
    rig.service.issue(1)
    rig.press("next")
    rig.run(100)
    rig.press("done")
    rig.run(31_000, step=100)
    rig.press("rate3")
    assert rig.sent("rating.submit") == [] and any("nothing to rate" in line for line in rig.lines)


def test_calls_are_refused_offline_done_and_rating_wait_and_apply_once(rig):
    n = rig.service.issue(3)
    rig.press("next")
    rig.run(100)
    rig.broker.down()
    rig.run(100)
    assert not rig.box.link.online and rig.box.led_mode() == "link_down"
    rig.press("next")
    assert rig.showing("OFF") and len(rig.sent("counter.next")) == 1
    rig.run(2100)
    rig.press("done")
    rig.press("rate3")
    assert len(rig.box.channel.outbox.entries) == 2
    rig.broker.restart()
    rig.service.reconnect()
    rig.run(3000)
    assert rig.box.link.online and rig.box.channel.outbox.entries == []
    assert [e.number for e in rig.service.events("ticket.done")] == [n[0]]
    assert [e.level for e in rig.service.events("rating.submitted")] == [3]
    assert rig.shown() == "----"


def test_lost_acks_mean_resends_with_the_same_id_applied_once(rig):
    rig.service.issue(2)
    rig.service.paused = True         # the service is busy: commands wait, acks do not come
    rig.press("pause")
    rig.run(7000)
    sent = rig.sent("counter.pause")
    assert len(sent) >= 3 and len({s["id"] for s in sent}) == 1
    rig.service.paused = False
    rig.run(200)
    assert len(rig.service.events("counter.paused")) == 1
    assert rig.service.svc.stats["duplicates"] >= 2


def test_an_unanswered_call_is_withdrawn_and_not_resent(rig):
    rig.service.issue(1)
    rig.service.paused = True
    rig.press("next")
    rig.run(5200)
    # withdrawn: it became a cmd.void with the same id, so the box's sequence stays unbroken
    assert [e.type for e in rig.box.channel.outbox.entries] == ["cmd.void"]
    assert any("no answer" in line for line in rig.lines)
    count = len(rig.sent("counter.next"))
    rig.run(5000)
    assert len(rig.sent("counter.next")) == count
    rig.service.paused = False
    rig.run(4000)
    assert rig.box.channel.outbox.entries == []


def test_a_reboot_resends_the_queued_done_with_its_id_and_keeps_seq(rig, tmp_path):
    rig.service.issue(2)
    rig.press("next")
    rig.run(100)
    rig.service.paused = True
    rig.press("done")
    rig.run(50)
    first = rig.sent("counter.done")[0]
    # power cut: a new box with the same flash
    rig2 = Rig(broker=rig.broker, store=rig.store)
    rig2.between = rig.service
    rig.box.link.close()
    rig.service.paused = False
    rig2.run(300)
    resent = rig2.sent("counter.done")
    assert {s["id"] for s in resent} == {first["id"]}
    assert len(rig.service.events("ticket.done")) == 1
    rig2.run(1600)
    rig2.press("pause")
    assert rig2.sent("counter.pause")[-1]["seq"] == first["seq"] + 1


def test_a_full_outbox_refuses_more(rig):
    rig.broker.down()
    rig.run(100)
    for _ in range(20):
        rig.box.channel.outbox.add("counter.pause", None, False)
    rig.box.view_serving = {"ticket_id": "ticket-123456", "number": 1001}
    rig.press("pause")
    assert any("too many commands" in line for line in rig.lines) and rig.shown() == "Err"


def test_garbage_on_the_box_topics_loses_nothing(rig):
    rig.service.issue(1)
    topics = protocol.Topics("phuong-an-khanh", "counter-3")
    for payload in (b"", b"\xff", b"[]", b'{"counter": 3}', b'{"id": "x", "ok": "yes"}'):
        rig.broker.publish(topics.ack, payload)
        rig.broker.publish(topics.counter_state(3), payload)
    rig.run(100)
    rig.press("next")
    rig.run(100)
    assert rig.box.serving() is not None and rig.box.link.online
