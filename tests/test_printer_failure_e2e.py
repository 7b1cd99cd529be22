"""A ticket the kiosk cannot print, end to end: the real kiosk with its simulated printer
(pty), the real service over a real Mosquitto, `qms web`'s alerts and the report. The
citizen keeps the number on screen with a clear instruction; the service logs the fact
`ticket.print_failed`; the report counts it; staff get a retained alert."""
from __future__ import annotations

import pytest
from support.site import make_config
from support.wait import wait_until
from support.wait import wait_until as wait_for
from support.web import WEB_EXTRA, retained_alerts

from qms.config.site import load_config
from qms.drivers.printer_status import PrinterStatus
from qms.kiosk.app import KioskApp
from qms.kiosk.printing import make_printer
from qms.kiosk.voice import SilentSpeaker
from qms.protocol.topics import Topics
from qms.reports.render import render_table
from qms.reports.stats import Point, build_report
from qms.sim.kiosk_testing import tap


@pytest.fixture
def site_config(tmp_path, broker):       # the shared site plus a [web] section
    return make_config(tmp_path, broker.port, extra=WEB_EXTRA)


def test_paper_out_inside_a_ticket_is_reported_shown_counted_and_alerted(web, service, site_config,
                                                                         site_clock, tmp_path, artifacts):
    cfg = load_config(site_config)
    printer = make_printer(cfg.printer, tmp_path)
    printer.driver.reprint_window_s = 1.0
    sim = printer.driver.simulator
    app = KioskApp(cfg, "kiosk-1", size=(1024, 600), printer=printer, speaker=SilentSpeaker(),
                   clock=site_clock, db=tmp_path / "kiosk-1.sqlite").start()
    try:
        assert wait_until(lambda: app.device.online and "ho-tich" in app.issuer.service_views, 10, step=app.step)
        job_size = len(printer.driver.encoder.encode(_any_ticket()))
        sim.fault_after(job_size // 2, PrinterStatus.PAPER_OUT)    # the roll ends inside the ticket
        tap(app, ("menu",))
        tap(app, ("service", "ho-tich"), finger=True)
        ticket = app.view.ticket
        assert ticket.number == 2001
        assert wait_until(lambda: app.view.screen == "screen_ticket", 10, step=app.step)
        assert app.view.ticket is ticket                           # the number stays on screen
        assert app.view.message[0] == ("Máy in hết giấy nên vé chưa in được. Số của bạn vẫn có hiệu lực: "
                                       "vui lòng ghi nhớ số trên màn hình và báo cán bộ hướng dẫn.")
        assert sim.tickets == []                                   # nothing half-printed was counted
        # the service logged the fact; the ticket keeps its place in the queue
        facts = wait_for(lambda: [e for e in service.store.events(day=service.core.day)
                                  if e.__struct_config__.tag == "ticket.print_failed"], timeout=10)
        assert (facts[0].ticket_id, facts[0].number, facts[0].reason, facts[0].dev) == (
            ticket.ticket_id, 2001, "paper_out", "kiosk-1")
        assert service.core.tickets[ticket.ticket_id].state == "waiting"
        # staff see an alert
        topic = Topics(cfg.site.id).alert("print", "kiosk-1")
        wait_for(lambda: topic in web.alerts.check(site_clock()), timeout=10)
        alert = wait_for(lambda: retained_alerts(cfg).get(topic))
        assert alert["number"] == 2001 and "vé số 2001 chưa in được (hết giấy)" in alert["message_vi"]
        # the day's report counts it
        report = build_report([Point(cfg, tmp_path / "service.sqlite")], service.core.day, service.core.day)
        assert report.total.print_failed == 1
        assert "Vé đã cấp nhưng máy in không in được: 1" in render_table(report)
        # paper back: the next citizen gets a clean ticket
        sim.set_state(PrinterStatus.READY)
        assert wait_until(lambda: app.printer_status == "ready", 10, step=app.step)
        app.reset()
        tap(app, ("menu",))
        tap(app, ("service", "ho-tich"), finger=True)
        assert sim.wait_tickets(1, timeout=10)
        sim.tickets[0].save(artifacts / "after-paper-out.png")
    finally:
        app.stop()


def _any_ticket():
    from qms.drivers.ticket import sample_ticket
    return sample_ticket()
