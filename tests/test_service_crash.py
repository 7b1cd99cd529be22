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


def test_bad_message_counts_survive_sigterm_and_kill_9(tmp_path, site_config, broker):
    """Per-device counts of invalid and refused messages are today's, kept in the service's
    log: a restart (SIGTERM, or kill -9 once they were flushed) publishes them again in
    state/summary and alert/device/<dev>. Garbage from a raw paho client."""
    import sqlite3

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    db = tmp_path / "svc.sqlite"
    rec = Recorder(broker.port, topics.summary, topics.alert("device", "+"), client_id="watch")
    junk = paho.Client(CallbackAPIVersion.VERSION2, client_id="junk", protocol=paho.MQTTv5)
    junk.connect("127.0.0.1", broker.port)
    junk.loop_start()

    def send(n: int) -> None:
        for _ in range(n):
            junk.publish(topics.command("kiosk", "kiosk-1"), b"not json", qos=1).wait_for_publish(5)
        junk.publish(topics.command("kiosk", "kiosk-9"), b'{"v":1,"id":"unlisted-%d","dev":"kiosk-9","seq":1,'
                     b'"ts":1,"type":"ticket.request","service":"ho-tich"}' % n, qos=1).wait_for_publish(5)

    def counts() -> dict | None:
        return (rec.latest(topics.summary) or {}).get("bad_messages")

    def saved() -> dict:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return {dev: (i, r) for dev, i, r in c.execute("SELECT dev, invalid, refused FROM bad_messages")}

    def restarted(how: signal.Signals) -> subprocess.Popen:
        proc.send_signal(how)
        proc.wait(10)
        with rec.lock:
            rec.messages.clear()            # from now on: what the new process publishes
        return start_service(site_config, db)

    want = {"kiosk-1": {"invalid": 5, "refused": 0, "last_error": "invalid"},
            "kiosk-9": {"invalid": 0, "refused": 1, "last_error": "unknown_device"}}
    proc = start_service(site_config, db)
    try:
        # the service publishes its summary once subscribed (its SUBSCRIBE went first)
        assert rec.wait_for(lambda: rec.latest(topics.summary) is not None, 20, what="the service")
        send(5)
        assert rec.wait_for(lambda: counts() == want)
        proc = restarted(signal.SIGTERM)
        assert rec.wait_for(lambda: counts() is not None, what="a summary from the new process")
        assert counts() == want, "counts lost across SIGTERM"
        assert rec.wait_for(lambda: (rec.latest(topics.alert("device", "kiosk-1")) or {}).get("invalid") == 5)

        send(3)
        want = {"kiosk-1": {"invalid": 8, "refused": 0, "last_error": "invalid"},
                "kiosk-9": {"invalid": 0, "refused": 2, "last_error": "unknown_device"}}
        assert rec.wait_for(lambda: counts() == want)
        # written without a write per message: within LAZY_FLUSH_S (1 s) of the last one
        assert wait_until(lambda: saved() == {"kiosk-1": (8, 0), "kiosk-9": (0, 2)}, 5)
        proc = restarted(signal.SIGKILL)
        assert rec.wait_for(lambda: counts() is not None, what="a summary from the new process")
        assert counts() == want, "counts lost across kill -9"
        assert rec.wait_for(lambda: (rec.latest(topics.alert("device", "kiosk-9")) or {}).get("refused") == 2)
    finally:
        junk.disconnect()
        junk.loop_stop()
        rec.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
