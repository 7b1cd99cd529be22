"""Debounce and long press in our code, driven through real gpiozero Buttons on mock pins."""
from __future__ import annotations

import threading

import pytest

from qms.config.counter import ButtonPins
from qms.counter.keys import Debouncer, GpioKeys, KeyPad, key_pins


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def rig(mock_pins):
    """Real Buttons on mock pins -> edges stamped by a fake clock -> KeyPad."""
    clock = FakeClock()
    edges: list[tuple[str, bool, float]] = []
    pins = key_pins(ButtonPins())
    keys = GpioKeys(pins, lambda k, p, at: edges.append((k, p, at)), clock)
    pad = KeyPad(pins, debounce_s=0.040, long_press_s=1.0)

    def drain():
        out = [e for edge in edges for e in pad.edge(*edge)]
        edges.clear()
        return out + pad.tick(clock())

    yield mock_pins, pins, clock, drain
    keys.close()


def test_key_map_names_staff_and_rating_keys():
    pins = key_pins(ButtonPins())
    assert pins["next"] == 5 and pins["done"] == 21
    assert pins["rate4"] == 12 and pins["rate1"] == 7       # best first in the config


def test_bounces_on_press_and_release_give_one_down_and_one_up(rig):
    factory, pins, clock, drain = rig
    pin = factory.pin(pins["next"])
    for _ in range(4):                      # 4 ms of contact chatter
        pin.drive_low()
        clock.advance(0.001)
        pin.drive_high()
        clock.advance(0.001)
    pin.drive_low()
    events = drain()
    assert [(e.key, e.kind) for e in events] == [("next", "down")]
    assert events[0].at == 100.0            # counted at the first edge: no latency added
    clock.advance(0.2)
    for _ in range(3):                      # chatter on release
        pin.drive_high()
        clock.advance(0.002)
        pin.drive_low()
        clock.advance(0.002)
    pin.drive_high()
    assert [(e.key, e.kind) for e in drain()] == [("next", "up")]
    clock.advance(0.1)
    assert drain() == []                    # nothing more once settled


def test_a_bounce_ending_pressed_settles_after_the_quiet_time(rig):
    factory, pins, clock, drain = rig
    pin = factory.pin(pins["recall"])
    pin.drive_low()
    assert [e.kind for e in drain()] == ["down"]
    clock.advance(0.010)
    pin.drive_high()                        # a real, short release inside the quiet time
    assert drain() == []
    clock.advance(0.040)
    assert [e.kind for e in drain()] == ["up"]       # caught up with the raw level


def test_long_press_gives_hold_then_a_long_up(rig):
    factory, pins, clock, drain = rig
    pin = factory.pin(pins["no_show"])
    pin.drive_low()
    assert [e.kind for e in drain()] == ["down"]
    clock.advance(0.5)
    assert drain() == []
    clock.advance(0.6)
    assert [e.kind for e in drain()] == ["hold"]
    clock.advance(2.0)
    assert drain() == []                    # one hold per press
    pin.drive_high()
    ups = drain()
    assert [(e.kind, e.long) for e in ups] == [("up", True)]


def test_short_press_up_is_not_long():
    d = Debouncer("done", 0.04, 1.0)
    assert [e.kind for e in d.edge(True, 0.0)] == ["down"]
    assert [(e.kind, e.long) for e in d.edge(False, 0.3)] == [("up", False)]


def test_edges_from_another_thread_arrive_whole(rig):
    """Real pin factories call back from their own thread: edges are only queued there."""
    factory, pins, clock, drain = rig
    pin = factory.pin(pins["rate4"])

    def press_twice():
        pin.drive_low()
        clock.advance(0.1)
        pin.drive_high()
        clock.advance(0.1)
        pin.drive_low()

    t = threading.Thread(target=press_twice)
    t.start()
    t.join()
    assert [(e.key, e.kind) for e in drain()] == [("rate4", "down"), ("rate4", "up"), ("rate4", "down")]


def test_one_pin_for_two_keys_is_refused_with_a_clear_message(mock_pins):
    pins = key_pins(ButtonPins(next=5, recall=5))
    with pytest.raises(ValueError, match=r"pin\(s\) \[5\]"):
        GpioKeys(pins, lambda *a: None, lambda: 0.0)
