"""Booking check-in at the kiosk, end to end: a booking made through `qms web`'s API (the
real WebApp on loopback HTTP), checked in at the kiosk by touches on its keypad and by a
QR scanner's keystrokes (SDL key events), the ticket printed by the real printer driver's
simulated printer (PNG), and called in its turn by the real service over a real Mosquitto.
Refusals (expired, too early, unknown, not a code, cap, service unreachable) get their own
screen, saved as PNGs in both languages (artifacts/kiosk/checkin-*.png)."""
from __future__ import annotations

import http.client
import json
import secrets

import pygame
import pytest
from support.site import free_port, make_config
from support.wait import wait_until
from support.web import BOOK_TOKEN, KIOSK_TOKEN, WEB_EXTRA

from qms.config.site import load_config
from qms.kiosk.app import KioskApp
from qms.kiosk.printing import MemoryPrinter, make_printer
from qms.kiosk.voice import SilentSpeaker
from qms.mqtt.device import Device
from qms.sim.kiosk_testing import tap, target
from qms.web.server import WebApp

# the web tests' [web] section and tokens (an integrator's and kiosk-1's check-in token)
EXTRA = """
[kiosk]
checkin_token_file = "checkin-{device}.token"
checkin_url = "http://127.0.0.1:{port}"
checkin_timeout_s = 8
""" + WEB_EXTRA


def kiosk_config(tmp_path, broker_port: int, web_port: int, extra: str = EXTRA):
    (tmp_path / "checkin-kiosk-1.token").write_text(KIOSK_TOKEN + "\n")
    return make_config(tmp_path, broker_port, extra=extra.replace("{port}", str(web_port)))


@pytest.fixture
def web_port():
    return free_port()


@pytest.fixture
def site_config(tmp_path, broker, web_port):       # the conftest site plus check-in and [web]
    return kiosk_config(tmp_path, broker.port, web_port)


@pytest.fixture
def web(service, site_config, tmp_path, site_clock, web_port):
    app = WebApp(load_config(site_config), tmp_path / "service.sqlite", clock=site_clock,
                 bookings_path=tmp_path / "web.sqlite", bind="127.0.0.1", port=web_port).start()
    assert app.device.link.wait_connected(10)
    yield app
    app.stop()


def make_kiosk(site_config, tmp_path, site_clock, printer=None) -> KioskApp:
    cfg = load_config(site_config)
    return KioskApp(cfg, "kiosk-1", size=(1024, 600), printer=printer or MemoryPrinter(),
                    speaker=SilentSpeaker(), clock=site_clock, db=tmp_path / "kiosk-1.sqlite").start()


def book(web: WebApp, site_clock, **over) -> dict:
    import datetime as dt
    day = dt.datetime.fromtimestamp(site_clock() / 1000, dt.timezone(dt.timedelta(hours=7))).date().isoformat()
    body = {"service": "ho-tich", "date": day, "from": "09:00", "to": "10:00", "reference": secrets.token_hex(32), **over}   # one citizen each
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    conn.request("POST", "/api/v1/bookings", body=json.dumps(body).encode(),
                 headers={"Authorization": f"Bearer {BOOK_TOKEN}", "Content-Type": "application/json"})
    r = conn.getresponse()
    data = json.loads(r.read())
    conn.close()
    assert r.status == 201, data
    return data["booking"]


def type_on_keypad(app, code: str) -> None:
    tap(app, ("checkin",))                              # one touch from the idle screen
    assert app.view.screen == "checkin"
    for ch in code.replace("-", ""):
        tap(app, ("key", ch))


def scan(app, text: str) -> None:
    """A USB HID QR scanner: one key event per character, then Enter."""
    for ch in text:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=ord(ch.lower()), unicode=ch, mod=0, scancode=0))
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN, unicode="\r", mod=0, scancode=0))
    app.step()


def shoot(app, artifacts, name: str) -> None:
    out = artifacts / "kiosk"
    out.mkdir(exist_ok=True)
    lang = app.view.lang
    for other in ("vi", "en"):
        app.view.lang = other
        app.save(out / f"checkin-{name}-{other}.png")
    app.view.lang = lang


def test_booked_tickets_checked_in_by_keypad_and_scanner_print_and_are_called_in_turn(
        web, service, site_config, tmp_path, site_clock, artifacts):
    cfg = load_config(site_config)
    printer = make_printer(cfg.printer, tmp_path)        # the real driver, simulated printer behind a pty
    sim = printer.driver.simulator
    app = make_kiosk(site_config, tmp_path, site_clock, printer)
    counter = Device(cfg, "counter-3", "counter", outbox_path=tmp_path / "counter-3.outbox").start()
    try:
        assert app.view.booking and wait_until(lambda: app.device.online, 10, step=app.step)
        typed, scanned = book(web, site_clock), book(web, site_clock)
        app.render()
        shoot(app, artifacts, "idle")
        tap(app, ("menu",))
        tap(app, ("service", "ho-tich"))                 # a walk-in first
        walk_in = app.view.ticket
        assert walk_in.number == 2001
        app.reset()

        # typed on the keypad, as printed in the app: XXXX-XXXX
        raw = typed["code"].replace("-", "")
        type_on_keypad(app, raw[:7])
        assert app.view.code == raw[:7]
        assert ("submit_code",) not in [a for _, a in app.hits]       # not before 8 characters
        shoot(app, artifacts, "keypad")
        tap(app, ("key_delete",))
        tap(app, ("key", raw[6]))
        tap(app, ("key", raw[7]))
        tap(app, ("key", "Z"))                                        # a 9th key is ignored
        assert app.view.code == raw
        tap(app, ("submit_code",))
        assert app.view.screen == "checking"
        shoot(app, artifacts, "checking")
        assert wait_until(lambda: app.view.screen == "confirm", 10, step=app.step)
        t1 = app.view.ticket
        assert (t1.number, t1.ticket_id, t1.service) == (2002, typed["ticket_id"], "ho-tich")
        assert t1.people_ahead == 1 and not t1.offline
        assert t1.qr == typed["tracking_url"]
        assert sim.wait_tickets(2, timeout=10)                        # out of the same printer
        sim.tickets[1].save(artifacts / "kiosk" / "checkin-ticket-2002.png")

        # scanned from the idle screen: the QR holds the code without its dash
        app.reset()
        scan(app, scanned["qr_text"])
        assert app.view.screen == "checking"
        assert wait_until(lambda: app.view.screen == "confirm", 10, step=app.step)
        assert app.view.ticket.number == 2003 and app.view.ticket.ticket_id == scanned["ticket_id"]
        assert sim.wait_tickets(3, timeout=10)
        # the same code scanned again is a reprint of the same ticket, on the check-in screen too
        app.reset()
        tap(app, ("checkin",))
        scan(app, scanned["code"].lower())
        assert wait_until(lambda: app.view.screen == "confirm", 10, step=app.step)
        assert app.view.ticket.number == 2003
        assert wait_until(lambda: not app.view.printing, 10, step=app.step)
        shoot(app, artifacts, "confirm")

        called = []
        for _ in range(3):
            _, ack = counter.request("counter.next", 10)
            assert ack is not None and ack.ok, ack
            called.append(ack.result["ticket"]["number"])
        assert called == [2001, 2002, 2003]                           # booked numbers count the same
        assert service.core.tickets[typed["ticket_id"]].source == "booking"
    finally:
        counter.stop()
        app.stop()


def test_refusals_have_their_own_screens(web, service, broker, site_config, tmp_path, site_clock, artifacts):
    app = make_kiosk(site_config, tmp_path, site_clock)
    try:
        short = book(web, site_clock, **{"from": "09:00", "to": "09:15"})
        tomorrow = book(web, site_clock, date="2026-11-25")
        capped = book(web, site_clock, service="xay-dung")

        def check_in(code: str, screen: str = "message"):
            app.reset()
            type_on_keypad(app, code)
            tap(app, ("submit_code",))
            assert wait_until(lambda: app.view.screen == screen, 10, step=app.step), app.view.screen

        check_in(tomorrow["code"])
        assert app.view.title == "title_too_early" and "25/11" in app.view.message[0]
        shoot(app, artifacts, "too-early")
        check_in("ZZZZ-ZZZZ")
        assert app.view.title == "title_unknown_code"
        assert app.view.message[0] == "Mã đặt lịch không đúng. Xin kiểm tra lại."
        tap(app, ("checkin",))                                          # "type it again"
        assert app.view.screen == "checkin" and app.view.code == ""
        shoot(app, artifacts, "unknown")

        # a citizen ID card's QR code: refused on the kiosk, never sent to the web server
        app.reset()
        failures_left = web.checkin_failures._buckets["127.0.0.1"][0]   # the unknown code took one
        scan(app, "001099012345|Nguyễn Văn A|01011990|Nam|Hà Nội")
        assert app.view.screen == "message" and app.view.title == "title_bad_code"
        assert web.checkin_failures._buckets["127.0.0.1"][0] == failures_left
        shoot(app, artifacts, "not-a-code")

        service.core.issued["xay-dung"] = app.cfg.service("xay-dung").daily_cap
        check_in(capped["code"])
        assert app.view.title == "title_daily_cap" and "hết số" in app.view.message[0]
        shoot(app, artifacts, "daily-cap")

        site_clock.advance(16 * 60)                                     # the 09:00-09:15 window is over
        check_in(short["code"])
        assert app.view.title == "title_booking_expired" and "hết hạn" in app.view.message[0]
        assert [a for _, a in app.view.actions] == [("menu",), ("idle",)]
        shoot(app, artifacts, "expired")
        tap(app, ("menu",))                                             # "take a new number"
        assert app.view.screen == "menu"

        # the service cannot be reached (the broker is down): see a staff member, no stack trace
        ok_booking = book(web, site_clock)
        broker.stop()
        assert wait_until(lambda: not web.device.online, 10)
        check_in(ok_booking["code"])
        assert app.view.title == "title_unavailable"
        assert app.view.message[0].endswith("Vui lòng liên hệ cán bộ hướng dẫn để được hỗ trợ.")
        shoot(app, artifacts, "unavailable")
        # ... and the same when `qms web` itself is gone
        web.stop()
        check_in(ok_booking["code"])
        assert app.view.title == "title_unavailable"
        assert app.printer.printed == []                                # nothing printed for a refusal
    finally:
        app.stop()


def test_keyboard_input_is_taken_only_where_a_code_makes_sense(tmp_path, site_clock):
    app = make_kiosk(kiosk_config(tmp_path, free_port(), free_port()), tmp_path, site_clock)
    try:
        tap(app, ("procedures",))
        scan(app, "QK2EKX03")                                   # not on a procedure screen
        assert app.view.screen == "procedures"
        app.reset()
        scan(app, "short")
        assert app.view.title == "title_bad_code"
        # no web server on the configured port: see staff, within the timeout, no crash
        app.reset()
        scan(app, "qk2e-kxo3")                                  # O read as 0
        assert app.view.code == "QK2EKX03" and app.view.screen == "checking"
        assert wait_until(lambda: app.view.screen == "message", 10, step=app.step)
        assert app.view.title == "title_unavailable"
        # taps are big enough for a finger on the keypad
        app.reset()
        tap(app, ("checkin",))
        for r, _ in app.hits:
            assert min(r.size) >= 0.09 * 600 and app.surface.get_rect().contains(r)
        assert target(app, ("key", "0")).width >= 100
    finally:
        app.stop()


def test_no_booking_button_without_a_token(tmp_path, site_clock):
    extra = EXTRA.replace('checkin_token_file = "checkin-{device}.token"', 'checkin_token_file = "missing.token"')
    app = make_kiosk(kiosk_config(tmp_path, free_port(), free_port(), extra), tmp_path, site_clock)
    try:
        app.render()
        assert app.checkin is None and ("checkin",) not in [a for _, a in app.hits]
        scan(app, "QK2EKX03")
        assert app.view.screen == "idle"
    finally:
        app.stop()
