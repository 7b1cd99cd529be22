"""kill -9 of the service at random moments: it comes back exactly where its log says."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
from support.mqtt import Recorder
from support.wait import wait_until

from qms.config.site import load_config
from qms.core.queue import QueueCore
from qms.mqtt.device import Device
from qms.protocol import messages as m
from qms.protocol.topics import Topics
from qms.service.store import EventStore

ROOT = Path(__file__).resolve().parent.parent


def start_service(config: Path, db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qms", "service", "--config", str(config),
                             "--db", str(db)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_kill_9_at_random_moments(tmp_path, site_config, broker):
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    db = tmp_path / "svc.sqlite"
    proc = start_service(site_config, db)
    devs = [Device(cfg, d, r, outbox_path=tmp_path / f"{d}.sqlite", resend_after=0.5).start()
            for d, r in (("kiosk-1", "kiosk"), ("counter-1", "counter"), ("counter-2", "counter"))]
    kiosk, c1, c2 = devs
    rng = random.Random(42)
    kills = 0
    sent = 0
    try:
        for i in range(400):
            kiosk.send("ticket.request", service="chung-thuc")
            sent += 1
            if i % 2:
                (c1 if i % 4 == 1 else c2).send("counter.next")
                sent += 1
            if i % 100 == 50:
                time.sleep(rng.uniform(0.05, 0.4))      # let some of it be handled, then kill
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = start_service(site_config, db)
            time.sleep(0.002)
        assert wait_until(lambda: sum(d.outbox.count() for d in devs) == 0, 90), \
            [d.outbox.count() for d in devs]
        rec = Recorder(broker.port, topics.all_state, client_id="checker")
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    finally:
        for d in devs:
            d.stop()
        if proc.poll() is None:
            proc.kill()
    assert kills == 4
    store = EventStore(db)
    events = list(store.events())
    issued = [e for e in events if isinstance(e, m.TicketIssued)]
    called = [e.ticket_id for e in events if isinstance(e, m.TicketCalled)]
    assert len(issued) == 400, "a ticket was lost or doubled across kill -9"
    assert len({e.number for e in issued}) == 400
    # a "next" re-sent after a restart may find nobody yet (devices are not ordered among
    # themselves), but no ticket is ever called twice and every command was handled once
    assert len(called) == len(set(called)) >= 1
    handled = store.conn.execute("SELECT count(*) FROM handled").fetchone()[0]
    assert handled == sent
    # the state the service published equals the state its log rebuilds
    fresh = QueueCore(cfg)
    fresh.roll(events[-1].at)
    for e in store.events(day=fresh.day):
        fresh.apply(e)
    fresh.check_invariants()
    for n in fresh.counters:
        assert rec.latest(topics.counter_state(n)) == msgspec.json.decode(
            msgspec.json.encode(fresh.counter_view(n)))
    assert rec.latest(topics.calls) == msgspec.json.decode(msgspec.json.encode(fresh.calls_view()))
    rec.close()
