"""Kiosk hardware buttons (gpiozero MockFactory pins): an impatient citizen pressing three
times gets one ticket, as a touch screen gives one; the next citizen, after the guard, gets
theirs."""
from __future__ import annotations

import time

from support.site import make_config
from support.wait import wait_until

from qms.config.kiosk import KioskConfig
from qms.config.site import load_config
from qms.kiosk.app import KioskApp
from qms.kiosk.gpio import RepeatGuard, service_buttons
from qms.kiosk.printing import MemoryPrinter
from qms.kiosk.voice import SilentSpeaker

BUTTONS = """
[kiosk]
buttons = {"ho-tich" = 5, "dat-dai" = 6}
button_guard_s = 1.5
"""


def press(pins, pin: int) -> None:
    p = pins.pin(pin)
    p.drive_low()                 # Button: pull-up, pressed = low
    time.sleep(0.08)              # held longer than the 50 ms debounce, like a finger
    p.drive_high()
    time.sleep(0.08)


def test_three_presses_in_two_seconds_give_one_ticket(tmp_path, broker, service, mock_pins, site_clock):
    cfg = load_config(make_config(tmp_path, broker.port, extra=BUTTONS))
    printer = MemoryPrinter()
    app = KioskApp(cfg, "kiosk-1", size=(1024, 600), printer=printer, speaker=SilentSpeaker(),
                   clock=site_clock, db=tmp_path / "kiosk-1.sqlite").start()
    try:
        assert wait_until(lambda: app.device.online and "ho-tich" in app.issuer.service_views, 10, step=app.step)
        started = time.monotonic()
        press(mock_pins, 5)
        press(mock_pins, 5)
        press(mock_pins, 6)               # another button is no way around it
        assert time.monotonic() - started < 2
        assert wait_until(lambda: len(printer.printed) == 1, 10, step=app.step)
        # barrier: after the guard the next press gives the next ticket, and only it came
        assert wait_until(lambda: time.monotonic() - started > 1.6, 5, step=app.step)
        press(mock_pins, 6)
        assert wait_until(lambda: len(printer.printed) == 2, 10, step=app.step)
        assert [t.service for t in printer.printed] == ["ho-tich", "dat-dai"]
        assert len(service.core.tickets) == 2
    finally:
        app.stop()


def test_guard_follows_its_setting_and_can_be_off(mock_pins):
    now = [0.0]
    got = []
    kc = KioskConfig(buttons={"ho-tich": 5}, button_guard_s=3.0)
    buttons = service_buttons(kc, got.append, clock=lambda: now[0])
    try:
        for t in (0.0, 1.0, 2.9, 3.0, 3.5, 6.1):
            now[0] = t
            press(mock_pins, 5)
        assert got == ["ho-tich"] * 3          # at 0, 3.0 and 6.1 s
    finally:
        for b in buttons:
            b.close()
    off = RepeatGuard(0.0, clock=lambda: 5.0)
    assert all(off.allow() for _ in range(3))
