"""A Raspberry Pi has no RTC: after a power cut its clock says the last shutdown until NTP
syncs. Whose clock decides, and what happens to a ticket stamped by a wrong one."""
from __future__ import annotations

import datetime as dt
import json

from support.mqtt import Recorder, raw_client
from support.site import make_config
from support.wait import wait_until

from qms.config.site import load_config
from qms.kiosk.app import KioskApp
from qms.kiosk.issuer import Refusal
from qms.kiosk.printing import MemoryPrinter
from qms.kiosk.voice import SilentSpeaker
from qms.protocol.topics import Topics
from qms.service.app import CentralService
from qms.service.offline_clock import offline_intake, record_key

HOUR = 3_600_000
BEHIND = 15 * HOUR + 20 * 60_000        # the service's Tuesday 09:00 is the kiosk's Monday 17:40


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone(dt.timedelta(hours=7))).date().isoformat()


def test_offline_intake_keeps_a_sane_stamp_and_replaces_another_days_or_the_future():
    now = 1795485600000                                  # 2026-11-24 09:00 +07
    assert offline_intake(now - 60_000, now, _day).issued_at == now - 60_000
    assert offline_intake(now - 60_000, now, _day).reason is None
    yesterday = offline_intake(now - BEHIND, now, _day)
    assert yesterday.issued_at == now and "2026-11-23" in yesterday.reason and "not expired" in yesterday.reason
    ahead = offline_intake(now + 3 * HOUR, now, _day)
    assert ahead.issued_at == now and "ahead" in ahead.reason


def test_a_ticket_stamped_yesterday_by_a_kiosk_is_taken_in_with_the_reason(broker, tmp_path, site_clock):
    """Raw MQTT, as a foreign kiosk: its offline ticket says yesterday 17:40."""
    cfg = load_config(make_config(tmp_path, broker.port))
    topics = Topics(cfg.site.id)
    db = tmp_path / "service.sqlite"
    svc = CentralService(cfg, db, clock=site_clock, tick_seconds=3600).start()
    rec = Recorder(broker.port, topics.ack("kiosk-1"))
    c = raw_client(broker.port, "kiosk-1")
    stamp = site_clock() - BEHIND
    msg = {"v": 1, "id": "offl-0000000001", "dev": "kiosk-1", "seq": 1, "ts": stamp, "type": "ticket.offline",
           "ticket_id": "tick-0000000001", "service": "ho-tich", "number": 2950, "issued_at": stamp}
    try:
        assert svc.link.wait_connected(10)
        c.publish(topics.command("kiosk", "kiosk-1"), json.dumps(msg), qos=1)
        assert rec.wait_for(lambda: rec.json(topics.ack("kiosk-1")))
        assert rec.json(topics.ack("kiosk-1"))[0]["ok"]
        t = svc.core.tickets["tick-0000000001"]
        assert t.state == "waiting" and _day(t.issued_at) == svc.core.day == "2026-11-24"
        why = json.loads(svc.store.get(record_key("tick-0000000001")))
        assert why["stamp"] == stamp and why["entered"] == t.issued_at and "2026-11-23" in why["reason"]
        assert svc.stats["offline_clock_fixed"] == 1
    finally:
        svc.stop()
        c.loop_stop()
        rec.close()
    again = CentralService(cfg, db, clock=site_clock, tick_seconds=3600)      # the log replayed
    try:
        assert again.core.tickets["tick-0000000001"].state == "waiting"
        assert json.loads(again.store.get(record_key("tick-0000000001")))["reason"] == why["reason"]
    finally:
        again.store.close()


def test_kiosk_on_yesterdays_clock_asks_the_service_then_numbers_on_the_time_it_saw(broker, tmp_path, site_clock):
    """The site's real hours (07:30-17:00). The kiosk's clock says Monday 17:40, past closing;
    the service's says Tuesday 09:00."""
    cfg = load_config(make_config(tmp_path, broker.port, hours_all_day=False))
    svc = CentralService(cfg, tmp_path / "service.sqlite", clock=site_clock, tick_seconds=3600).start()
    kiosk_clock = lambda: site_clock() - BEHIND
    printer = MemoryPrinter()
    app = KioskApp(cfg, "kiosk-1", size=(1024, 600), printer=printer, speaker=SilentSpeaker(),
                   clock=kiosk_clock, db=tmp_path / "kiosk-1.sqlite").start()
    try:
        assert wait_until(lambda: app.device.online and "ho-tich" in app.issuer.service_views
                          and app.issuer.service_online.get("service"), 10, step=app.step)
        # on its own clock the kiosk would refuse: the site is closed at 17:40
        assert isinstance(app.issuer._local_refusal("ho-tich", kiosk_clock()), Refusal)
        online = app.issuer.issue("ho-tich")
        assert not isinstance(online, Refusal), online
        assert not online.offline and online.number == 2001 and _day(online.issued_at) == "2026-11-24"
        # the service goes away; the kiosk's clock is still Monday 17:40
        svc.stop()
        assert wait_until(lambda: not app.issuer.answer_expected(), 10, step=app.step)
        offline = app.issuer.issue("ho-tich")
        assert not isinstance(offline, Refusal), offline          # not "closed" on a wrong clock
        assert offline.offline and offline.number == 2950
        assert offline.issued_at >= online.issued_at and _day(offline.issued_at) == "2026-11-24"
        assert app.issuer.numbers.used("2026-11-24")[0][1] == 950 and not app.issuer.numbers.used("2026-11-23")
        # the service back: the offline ticket waits today, as printed
        svc = CentralService(cfg, tmp_path / "service.sqlite", clock=site_clock, tick_seconds=3600).start()
        assert wait_until(lambda: app.device.outbox.count() == 0, 20, step=app.step)
        t = svc.core.tickets[offline.ticket_id]
        assert t.state == "waiting" and t.number == 2950
    finally:
        app.stop()
        svc.stop()
