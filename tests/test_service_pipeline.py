"""The service's group commit: nothing is published before its commit, and a failed
commit loses nothing and doubles nothing (the devices re-send)."""
from __future__ import annotations

import sqlite3

from support.mqtt import Recorder
from support.wait import wait_until

from qms.config.site import load_config
from qms.mqtt.device import Device
from qms.protocol import messages as m
from qms.protocol.topics import Topics


def test_a_failed_commit_publishes_nothing_and_the_resent_commands_count_once(tmp_path, broker, site_config,
                                                                            site_clock):
    from qms.service.app import CentralService
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    svc = CentralService(cfg, tmp_path / "svc.sqlite", clock=site_clock).start()
    real_write = svc.store.write
    failures = []

    def write_failing_once(rows):         # the disk refuses one commit (e.g. full for a moment)
        if not failures:
            failures.append(len(rows.handled))
            raise sqlite3.OperationalError("database or disk is full")
        return real_write(rows)

    svc.store.write = write_failing_once
    rec = Recorder(broker.port, topics.all_events)
    kiosk = Device(cfg, "kiosk-1", "kiosk", outbox_path=tmp_path / "k.sqlite", resend_after=1.0).start()
    try:
        assert kiosk.link.wait_connected(10)
        sent = [kiosk.send("ticket.request", service="ho-tich")["id"] for _ in range(5)]
        assert wait_until(lambda: kiosk.outbox.count() == 0, 30), "the kiosk never got all its acks"
        assert failures and failures[0] >= 1
        issued = [e for e in svc.store.events() if isinstance(e, m.TicketIssued)]
        assert len(issued) == 5 and len({e.number for e in issued}) == 5
        assert sorted(e.number for e in issued) == [2001, 2002, 2003, 2004, 2005]
        handled = svc.store.conn.execute("SELECT id FROM handled").fetchall()
        assert sorted(r[0] for r in handled) == sorted(sent)
        # facts went out only for what was committed: one ticket.issued per ticket
        assert rec.wait_for(lambda: len(rec.json(topics.event("ticket.issued"))) >= 5)
        facts = [p["number"] for p in rec.json(topics.event("ticket.issued"))]
        assert sorted(facts) == [2001, 2002, 2003, 2004, 2005]
        svc.core.check_invariants()
    finally:
        kiosk.stop()
        rec.close()
        svc.stop()
