"""End to end: touch -> ticket request -> real service over a real Mosquitto -> bytes at a
pty printer (python-escpos Serial) -> ticket event; and the same with the broker or the
service gone, synced later without loss, duplicates or reordering."""
from __future__ import annotations

import json
import time

from support.site import Broker, make_config
from support.wait import wait_until

from qms.config.site import load_config
from qms.drivers.printer_status import PrinterStatus
from qms.kiosk.app import KioskApp
from qms.kiosk.printing import MemoryPrinter, make_printer
from qms.kiosk.voice import SilentSpeaker
from qms.mqtt.client import MqttLink
from qms.service.app import CentralService
from qms.sim.kiosk_testing import tap


def listen(cfg, topic):
    got = []
    link = MqttLink(cfg.mqtt, "test-listener", subscriptions=[(topic, 1)],
                    on_message=lambda t, p, props: got.append(json.loads(p)))
    link.start()
    assert link.wait_connected(10)
    return link, got


def kiosk(cfg, tmp_path, clock, printer, name="kiosk-1"):
    app = KioskApp(cfg, name, size=(1024, 600), printer=printer, speaker=SilentSpeaker(),
                   clock=clock, db=tmp_path / f"{name}.sqlite")
    return app.start()


def test_touch_to_printed_ticket_online(site_config, service, site_clock, tmp_path, artifacts):
    """The real printer driver, its simulated ESC/POS printer behind a pty (PNG tickets)."""
    cfg = load_config(site_config)
    listener, events = listen(cfg, f"qms/v1/{cfg.site.id}/event/ticket.issued")
    printer = make_printer(cfg.printer, tmp_path)
    sim = printer.driver.simulator
    app = kiosk(cfg, tmp_path, site_clock, printer)
    try:
        assert wait_until(lambda: app.device.online and "ho-tich" in app.issuer.service_views, step=app.step)
        assert app.printer_status == "ready"
        tap(app, ("menu",))
        tap(app, ("service", "ho-tich"), finger=True)
        assert app.view.screen == "confirm" and app.view.ticket.number == 2001
        assert app.issuer.stats == {"online": 1, "offline": 0, "timeouts": 0, "refused": 0}
        assert sim.wait_tickets(1, timeout=10)                    # it came out of the printer
        sim.tickets[0].save(artifacts / "kiosk-e2e-ticket-2001.png")
        assert sim.received > 1000
        assert wait_until(lambda: events)
        assert events[0]["ticket_id"] == app.view.ticket.ticket_id and events[0]["number"] == 2001
        assert wait_until(lambda: not app.view.printing, step=app.step)
        # the live state reaches the menu: one waiting for ho-tich
        assert wait_until(lambda: app.issuer.service_views["ho-tich"]["waiting"] == 1, step=app.step)
        assert service.core.tickets[app.view.ticket.ticket_id].number == 2001
        # the roll ends: the next citizen is told, in plain words, and no number is wasted
        # (the printer is polled off the UI thread: the kiosk knows within a few seconds)
        sim.set_state(PrinterStatus.PAPER_OUT)
        assert wait_until(lambda: app.printer_status == "paper_out", step=app.step, timeout=8)
        app.reset()
        tap(app, ("menu",))
        tap(app, ("service", "ho-tich"))
        assert app.view.screen == "message"
        assert app.view.message[0] == "Máy in hết giấy, vui lòng liên hệ cán bộ hướng dẫn."
        assert len(service.core.tickets) == 1
    finally:
        app.stop()
        listener.stop()


def test_broker_down_for_the_whole_visit_then_synced(tmp_path, site_clock):
    broker = Broker(tmp_path)                        # configured, never started (yet)
    cfg = load_config(make_config(tmp_path, broker.port))
    printer = MemoryPrinter()
    app = kiosk(cfg, tmp_path, site_clock, printer)
    plan = ["chung-thuc", "chung-thuc", "ho-tich", "chung-thuc", "nhan-ket-qua"]
    try:
        took = []
        for s in plan:
            app.reset()
            tap(app, ("menu",))
            t0 = time.monotonic()
            tap(app, ("service", s))
            took.append(time.monotonic() - t0)
            assert app.view.screen == "confirm", app.view.message      # no error for a network fault
            site_clock.advance(30)
        assert app.issuer.stats["timeouts"] == 0        # broker known down: no waiting for it
        assert max(took) < cfg.kiosk.request_timeout_s
        assert wait_until(lambda: len(printer.printed) == 5, step=app.step)
        numbers = [t.number for t in printer.printed]
        assert numbers == [1950, 1951, 2950, 1952, 9950]   # kiosk-1: top block of each service
        assert all(t.offline for t in printer.printed)
        ids = [t.ticket_id for t in printer.printed]
        app.stop()
        # a restart of the kiosk keeps its outbox and its numbering
        app = kiosk(cfg, tmp_path, site_clock, printer)
        app.reset()
        tap(app, ("menu",))
        tap(app, ("service", "chung-thuc"))
        assert app.view.ticket.number == 1953
        ids.append(app.view.ticket.ticket_id)
        assert app.device.outbox.count() == 6
        # the broker and the service come back
        broker.start()
        svc = CentralService(cfg, tmp_path / "service.sqlite", clock=site_clock, tick_seconds=3600).start()
        try:
            assert wait_until(lambda: app.device.outbox.count() == 0, timeout=20, step=app.step)
            issued = [e for e in svc.store.events(day=svc.core.day) if type(e).__name__ == "TicketIssued"]
            assert [e.ticket_id for e in issued] == ids                 # each once, in order of issue
            assert [e.number for e in issued] == [1950, 1951, 2950, 1952, 9950, 1953]
            assert all(e.source == "offline" and e.dev == "kiosk-1" for e in issued)
            at = [e.issued_at for e in issued]
            assert at == sorted(at)
            svc.core.check_invariants()
            assert svc.stats["duplicates"] >= 0 and len(svc.core.tickets) == 6
        finally:
            svc.stop()
    finally:
        app.stop()
        broker.stop()


def test_service_silent_request_times_out_and_paper_wins(tmp_path, broker, site_clock):
    cfg = load_config(make_config(tmp_path, broker.port, extra="[kiosk]\nrequest_timeout_s = 0.3\n"))
    printer = MemoryPrinter()
    app = kiosk(cfg, tmp_path, site_clock, printer)
    try:
        assert wait_until(lambda: app.device.online, step=app.step)
        tap(app, ("menu",))
        t0 = time.monotonic()
        tap(app, ("service", "ho-tich"))
        assert time.monotonic() - t0 >= 0.3            # it did wait for the service, once
        first = app.view.ticket
        assert first.number == 2950 and app.issuer.stats["timeouts"] == 1
        app.reset()
        tap(app, ("menu",))
        t0 = time.monotonic()
        tap(app, ("service", "ho-tich"))
        assert time.monotonic() - t0 < 0.3             # no second wait: the service is known silent
        second = app.view.ticket
        assert second.number == 2951
        svc = CentralService(cfg, tmp_path / "service.sqlite", clock=site_clock, tick_seconds=3600).start()
        try:
            assert wait_until(lambda: app.device.outbox.count() == 0, timeout=20, step=app.step)
            assert svc.core.tickets[first.ticket_id].number == 2950       # renumbered to the paper
            assert svc.core.tickets[second.ticket_id].number == 2951
            kinds = [type(e).__name__ for e in svc.store.events(day=svc.core.day)]
            assert kinds == ["TicketIssued", "TicketRenumbered", "TicketIssued"]
            assert svc.core.by_number.get(2001) is None                    # the online number is gone
            # the service answers again: the next ticket is online
            assert wait_until(lambda: app.issuer.answer_expected(), step=app.step)
            app.reset()
            tap(app, ("menu",))
            tap(app, ("service", "ho-tich"))
            assert app.view.ticket.number == 2002 and not app.view.ticket.offline
        finally:
            svc.stop()
    finally:
        app.stop()


def test_refusals_from_the_service_are_shown(site_config, service, site_clock, tmp_path):
    cfg = load_config(site_config)
    app = kiosk(cfg, tmp_path, site_clock, MemoryPrinter())
    try:
        assert wait_until(lambda: app.device.online, step=app.step)
        service.core.issued["xay-dung"] = cfg.service("xay-dung").daily_cap     # cap reached
        tap(app, ("menu",))
        tap(app, ("service", "xay-dung"))
        assert app.view.screen == "message"
        assert app.view.message[0].startswith("Lĩnh vực Xây dựng đã hết số")
        assert app.printer.printed == []
    finally:
        app.stop()
