"""The central service end to end, through a real Mosquitto."""
from __future__ import annotations

import json
import random
import threading

import msgspec
from support.mqtt import Recorder, raw_client
from support.site import make_config
from support.wait import wait_until

from qms.config.site import load_config
from qms.mqtt.device import Device
from qms.protocol import messages as m
from qms.protocol.topics import Topics


def devices(cfg, tmp_path, *ids_roles):
    out = [Device(cfg, dev, role, outbox_path=tmp_path / f"{dev}.sqlite", resend_after=1.0).start()
           for dev, role in ids_roles]
    for d in out:
        assert d.link.wait_connected(10)
    return out


def test_ticket_request_call_and_retained_state(service, site_config, tmp_path, broker):
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    rec = Recorder(broker.port, topics.all_state, topics.all_events)
    kiosk, counter = devices(cfg, tmp_path, ("kiosk-1", "kiosk"), ("counter-2", "counter"))
    try:
        _, ack = kiosk.request("ticket.request", 5, service="ho-tich", priority="nguoi-cao-tuoi")
        assert ack.ok and ack.result["ticket"]["number"] == 2001
        assert ack.result["ticket"]["priority"] == "nguoi-cao-tuoi"
        _, ack = counter.request("counter.next", 5)
        assert ack.ok and ack.result["ticket"]["number"] == 2001 and ack.result["counter"] == 2
        assert rec.wait_for(lambda: (rec.latest(topics.counter_state(2)) or {}).get("serving"))
        assert rec.latest(topics.counter_state(2))["serving"]["number"] == 2001
        assert rec.wait_for(lambda: (rec.latest(topics.calls) or {}).get("calls"))
        assert rec.latest(topics.calls)["calls"][0] == {
            "number": 2001, "counter": 2, "service": "ho-tich",
            "ticket_id": ack.result["ticket"]["ticket_id"], "at": ack.result["state"]["serving"]["called_at"]}
        called = rec.json(topics.event("ticket.called"))
        assert [e["number"] for e in called] == [2001]
        # refusal comes back in both languages
        _, ack = counter.request("counter.recall", 5)
        assert ack.ok
        _, ack = kiosk.request("ticket.request", 5, service="khong-co")
        assert not ack.ok and ack.error == "unknown_service" and ack.message_vi and ack.message_en
        # a kiosk may not call numbers, even on its own topic
        _, ack = kiosk.request("counter.next", 5)
        assert not ack.ok and ack.error == "not_allowed"
    finally:
        for d in (kiosk, counter):
            d.stop()
        rec.close()


def test_same_message_twice_takes_effect_once(service, site_config, broker):
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    rec = Recorder(broker.port, topics.ack("kiosk-1"))
    c = raw_client(broker.port, "kiosk-1")
    msg = {"v": 1, "id": "dup-0000000001", "dev": "kiosk-1", "seq": 1, "ts": 1, "type": "ticket.request",
           "service": "chung-thuc"}
    for _ in range(5):
        c.publish(topics.command("kiosk", "kiosk-1"), json.dumps(msg), qos=1)
    assert rec.wait_for(lambda: len(rec.json(topics.ack("kiosk-1"))) == 5)
    acks = rec.json(topics.ack("kiosk-1"))
    assert all(a == acks[0] for a in acks) and acks[0]["ok"]
    assert len(service.core.tickets) == 1
    assert service.stats["duplicates"] == 4
    c.loop_stop()
    rec.close()


def test_broker_restart_mid_stream_loses_and_doubles_nothing(service, site_config, tmp_path, broker):
    cfg = load_config(site_config)
    kiosk, c1, c2 = devices(cfg, tmp_path, ("kiosk-1", "kiosk"), ("counter-1", "counter"),
                            ("counter-6", "counter"))
    sent = {"tickets": 0, "next": 0}
    try:
        for i in range(300):
            kiosk.send("ticket.request", service=random.choice(["chung-thuc", "nhan-ket-qua"]))
            sent["tickets"] += 1
            if i % 3 == 0:
                (c1 if i % 2 else c2).send("counter.next")
                sent["next"] += 1
            if i == 100:
                broker.restart()          # in the middle of the stream
            if i == 200:
                broker.stop()
            if i == 230:
                broker.start()
        assert wait_until(lambda: kiosk.outbox.count() == c1.outbox.count() == c2.outbox.count() == 0, 60)
    finally:
        for d in (kiosk, c1, c2):
            d.stop()
    core = service.core
    assert len(core.tickets) == 300, "a ticket was lost or doubled"
    assert service.stats["handled"] == sent["tickets"] + sent["next"]
    called = [e.ticket_id for e in service.store.events() if isinstance(e, m.TicketCalled)]
    # a counter's re-sent "next" may overtake the kiosk's tickets (devices are not ordered
    # among themselves) and find nobody; never may a ticket be called twice
    assert len(called) == len(set(called))
    assert sent["next"] - 10 <= len(called) <= sent["next"]
    numbers = sorted(t.number for t in core.tickets.values())
    assert len(numbers) == len(set(numbers))


def test_fifty_counters_press_next_at_once_no_ticket_twice(tmp_path, broker, site_clock):
    from support.site import make_config

    from qms.service.app import CentralService
    counters = "\n".join(f"[[counters]]\nnumber = {n}\nservices = [\"chung-thuc\"]\n" for n in range(10, 60))
    devs = "\n".join(f"[[devices]]\nid = \"c{n}\"\nrole = \"counter\"\ncounter = {n}\n" for n in range(10, 60))
    cfg = load_config(make_config(tmp_path, broker.port, counters + devs))
    svc = CentralService(cfg, tmp_path / "svc.sqlite", clock=site_clock).start()
    kiosk = devices(cfg, tmp_path, ("kiosk-1", "kiosk"))[0]
    try:
        for _ in range(200):
            kiosk.send("ticket.request", service="chung-thuc")
        assert wait_until(lambda: kiosk.outbox.count() == 0, 30)
        terminals = devices(cfg, tmp_path, *[(f"c{n}", "counter") for n in range(10, 60)])
        got: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(len(terminals))

        def press(dev):
            start.wait()
            for _ in range(5):
                _, ack = dev.request("counter.next", 10)
                assert ack is not None and ack.ok
                if ack.result["ticket"]:
                    with lock:
                        got.append(ack.result["ticket"]["number"])

        threads = [threading.Thread(target=press, args=(d,)) for d in terminals]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for d in terminals:
            d.stop()
        assert len(got) == len(set(got)), "a ticket was called at two counters"
        called = [e.ticket_id for e in svc.store.events() if isinstance(e, m.TicketCalled)]
        assert len(called) == len(set(called)) == 200
        svc.core.check_invariants()
    finally:
        kiosk.stop()
        svc.stop()


def _garbage(rng: random.Random, i: int) -> bytes:
    valid = {"v": 1, "id": f"hostile-{i:08d}", "dev": "kiosk-1", "seq": i, "ts": 1, "type": "ticket.request",
             "service": "chung-thuc"}
    kind = i % 12
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        return b"{" * rng.randint(1, 5000)
    if kind == 2:
        return json.dumps([valid]).encode()
    if kind == 3:
        return json.dumps({**valid, "v": 2}).encode()
    if kind == 4:
        return json.dumps({**valid, "type": "counter.explode"}).encode()
    if kind == 5:
        return json.dumps({**valid, "service": 12}).encode()
    if kind == 6:
        return json.dumps({**valid, "extra": "x"}).encode()
    if kind == 7:
        return json.dumps({**valid, "id": "short"}).encode()
    if kind == 8:
        return json.dumps({**valid, "dev": "counter-1"}).encode()       # not the topic's device
    if kind == 9:
        return json.dumps({**valid, "seq": -1}).encode()
    if kind == 10:
        return ("\u0000" * 100 + "đ" * 1000).encode()
    return json.dumps({**valid, "ts": "yesterday"}).encode()


def test_ten_thousand_hostile_payloads_change_nothing(service, site_config, broker):
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    before = {n: service.core.counter_view(n) for n in service.core.counters}
    c = raw_client(broker.port, "attacker")
    rng = random.Random(7)
    targets = [topics.command("kiosk", "kiosk-1"), topics.command("counter", "counter-1"),
               topics.command("admin", "x"), topics.command("web", "web-1"), f"{topics.base}/cmd/kiosk/",
               f"{topics.base}/cmd/a/b"]
    infos = [c.publish(targets[i % len(targets)], _garbage(rng, i), qos=1) for i in range(10_000)]
    for info in infos[-50:]:
        info.wait_for_publish(30)
    # every one of them is counted as invalid, or refused (a counter asking for a ticket)
    ok = wait_until(lambda: service.stats["invalid"] + service.stats["refused"] == 10_000, 60)
    assert ok, (service.stats, len(service._incoming))
    assert service._thread.is_alive()
    assert len(service.core.tickets) == 0
    assert {n: service.core.counter_view(n) for n in service.core.counters} == before
    assert list(service.store.events()) == []
    # and it still works
    k = Device(cfg, "kiosk-1", "kiosk", outbox_path=site_config.parent / "k.sqlite").start()
    try:
        assert k.link.wait_connected(5)
        _, ack = k.request("ticket.request", 5, service="chung-thuc")
        assert ack and ack.ok
    finally:
        k.stop()
        c.loop_stop()


def test_malformed_acks_do_not_break_a_device(service, site_config, broker, tmp_path):
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    k = devices(cfg, tmp_path, ("kiosk-1", "kiosk"))[0]
    c = raw_client(broker.port, "attacker")
    for i in range(500):
        c.publish(topics.ack("kiosk-1"), random.Random(i).randbytes(50), qos=1).wait_for_publish(5)
    c.publish(topics.ack("kiosk-1"), b'{"v":1,"id":"x","ok":"yes"}', qos=1).wait_for_publish(5)
    try:
        _, ack = k.request("ticket.request", 5, service="chung-thuc")
        assert ack and ack.ok
        assert k.channel.stats["invalid_acks"] >= 500
    finally:
        k.stop()
        c.loop_stop()


def test_state_is_republished_after_a_broker_restart(service, site_config, broker, tmp_path):
    """A broker without persistence forgets retained messages; the service publishes them again."""
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    k, c = devices(cfg, tmp_path, ("kiosk-1", "kiosk"), ("counter-3", "counter"))
    try:
        k.request("ticket.request", 5, service="ho-tich")
        c.request("counter.next", 5)
        broker.restart()
        assert wait_until(lambda: service.link.connected.is_set(), 20)
        rec = Recorder(broker.port, topics.all_state, client_id="late-display")
        assert rec.wait_for(lambda: (rec.latest(topics.counter_state(3)) or {}).get("serving"), 20)
        assert rec.latest(topics.counter_state(3))["serving"]["number"] == 2001
        # one burst, but a subscriber that arrived in its middle gets the rest live
        assert rec.wait_for(lambda: rec.latest(topics.service_state("ho-tich")) is not None, 10)
        assert rec.latest(topics.service_state("ho-tich"))["waiting"] == 0
        rec.close()
    finally:
        k.stop()
        c.stop()


def _cmd(dev, role, seq, type_, **kw):
    body = {"v": 1, "id": f"{dev}-{seq:06d}", "dev": dev, "seq": seq, "ts": 1, "type": type_, **kw}
    return (f"qms/v1/phuong-an-khanh/cmd/{role}/{dev}", json.dumps(body).encode(), None)


def test_a_device_commands_apply_in_its_own_order_and_voids_hold_their_place(site_config, tmp_path, site_clock):
    """A command past a gap waits for the gap (the device re-sends in order); a withdrawn
    command (cmd.void) fills its place and makes a late original harmless."""
    from qms.service.app import GAP_HOLD_MS, CentralService
    svc = CentralService(load_config(site_config), tmp_path / "svc.sqlite", clock=site_clock)
    k = lambda seq: _cmd("kiosk-1", "kiosk", seq, "ticket.request", service="chung-thuc")  # noqa: E731
    svc.process([k(1), k(3)])                       # 2 was lost on the way
    assert [t.number for t in svc.core.tickets.values()] == [1001]
    assert svc.stats["held"] == 1
    svc.process([k(2), k(3)])                       # the device re-sends its tail in order
    issued = [e for e in svc.store.events() if isinstance(e, m.TicketIssued)]
    assert [e.number for e in issued] == [1001, 1002, 1003]
    # a withdrawn call: the void takes its id; the original arriving later does nothing
    c = lambda seq, t="counter.next": _cmd("counter-1", "counter", seq, t)  # noqa: E731
    svc.process([c(1, "cmd.void")])
    svc.process([c(1)])
    assert not any(isinstance(e, m.TicketCalled) for e in svc.store.events())
    assert svc.stats["duplicates"] == 2               # the re-sent 3 (applied from the held ones), the void's
    svc.process([c(2)])
    assert sum(isinstance(e, m.TicketCalled) for e in svc.store.events()) == 1
    # a gap that never fills (a device that lost a command for good) stalls nobody: the
    # held command goes through once the gap times out, with no further command needed
    svc.process([c(9)])
    assert sum(isinstance(e, m.TicketCalled) for e in svc.store.events()) == 1
    site_clock.advance(GAP_HOLD_MS / 1000 + 1)
    svc.process([])
    assert sum(isinstance(e, m.TicketCalled) for e in svc.store.events()) == 2
    # the order survives a restart: the last seq per device is read back from the log
    svc.store.close()
    again = CentralService(load_config(site_config), tmp_path / "svc.sqlite", clock=site_clock)
    again.process([c(11)])
    assert again.stats["held"] == 1
    again.store.close()


def test_a_late_copy_from_before_a_sequence_reset_is_still_a_duplicate(site_config, tmp_path, site_clock):
    """The service skips the log look-up for a command whose seq is above all it has handled
    from that device; a copy that arrives late, after the device restarted its sequence,
    is below that mark and is found in the log (here after a service restart too)."""
    from qms.service.app import CentralService

    def k(dev, seq, msg_id):
        body = {"v": 1, "id": msg_id, "dev": dev, "seq": seq, "ts": 1, "type": "ticket.request",
                "service": "chung-thuc"}
        return (f"qms/v1/phuong-an-khanh/cmd/kiosk/{dev}", json.dumps(body).encode(), None)

    site_config = make_config(tmp_path, 1883, extra='[[devices]]\nid = "kiosk-2"\nrole = "kiosk"\n')
    svc = CentralService(load_config(site_config), tmp_path / "svc.sqlite", clock=site_clock)
    svc.process([k("kiosk-1", 1, "first-000001"), k("kiosk-1", 2, "first-000002"), k("kiosk-1", 3, "first-000003")])
    svc.store.close()
    again = CentralService(load_config(site_config), tmp_path / "svc.sqlite", clock=site_clock)
    again.process([k("kiosk-1", 1, "second-00001")])            # the kiosk's outbox was reset
    again.process([k("kiosk-1", 2, "first-000002")])            # a late copy of an old command
    assert len(again.core.tickets) == 4
    assert again.stats["duplicates"] == 1
    # an id another device already used (a broken device) is that device's own command
    again.process([k("kiosk-2", 1, "first-000003"), k("kiosk-2", 2, "kiosk2-000002")])
    assert len(again.core.tickets) == 6
    rows = again.store.conn.execute("SELECT dev FROM handled WHERE id = 'first-000003' ORDER BY dev").fetchall()
    assert rows == [("kiosk-1",), ("kiosk-2",)]
    assert len([e for e in again.store.events() if isinstance(e, m.TicketIssued)]) == 6
    again.store.close()


def test_calls_arrive_at_qos_1_and_the_rest_at_qos_0(service, site_config, tmp_path, broker):
    """A subscriber at QoS 1 gets calls at QoS 1 (a display must not miss one) and acks,
    other facts and retained state at QoS 0 (docs/protocol.md: why)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    cfg = load_config(site_config)
    topics = Topics(cfg.site.id)
    seen: dict[str, set[int]] = {}
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        kind = msg.topic.split("/")[3] if "/event/" not in msg.topic else msg.topic.rsplit("/", 1)[1]
        with lock:
            seen.setdefault(kind, set()).add(msg.qos)

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="qos-watch", protocol=paho.MQTTv5)
    c.on_message = on_message
    c.on_connect = lambda cl, *a: cl.subscribe([(f"{topics.base}/#", 1)])
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    kiosk, counter = devices(cfg, tmp_path, ("kiosk-1", "kiosk"), ("counter-2", "counter"))
    try:
        assert kiosk.request("ticket.request", 5, service="ho-tich")[1].ok
        assert counter.request("counter.next", 5)[1].ok
        assert counter.request("counter.recall", 5)[1].ok
        assert counter.request("counter.done", 5)[1].ok
        want = {"ticket.called", "ticket.recalled", "ticket.issued", "ticket.done", "ack", "state"}
        assert wait_until(lambda: want <= set(seen), 10), seen
        with lock:
            assert seen["ticket.called"] == seen["ticket.recalled"] == {1}
            assert seen["ticket.issued"] == seen["ticket.done"] == seen["ack"] == seen["state"] == {0}
    finally:
        for d in (kiosk, counter):
            d.stop()
        c.loop_stop()
        c.disconnect()


def test_the_printed_estimate_is_the_logged_one(site_config, tmp_path, site_clock):
    """The kiosk prints the wait from the ack; the accuracy report reads it from the log."""
    from qms.service.app import CentralService
    svc = CentralService(load_config(site_config), tmp_path / "svc.sqlite", clock=site_clock)
    for i in range(30):
        svc.process([_cmd("kiosk-1", "kiosk", i + 1, "ticket.request", service=("ho-tich", "chung-thuc")[i % 2])])
        if i % 4 == 3:
            svc.process([_cmd("counter-2", "counter", i // 4 + 1, "counter.next")])
        site_clock.advance(40)
    acks = {r[0]: msgspec.json.decode(r[1]) for r in svc.store.conn.execute(
        "SELECT id, ack FROM handled WHERE dev = 'kiosk-1'")}
    printed = {a["result"]["ticket"]["ticket_id"]: a["result"]["ticket"]["est_wait_s"] for a in acks.values()}
    logged = {e.ticket_id: e.est_wait_s for e in svc.store.events() if isinstance(e, m.TicketIssued)}
    assert len(printed) == 30 and printed == logged
    assert len(set(logged.values())) > 3            # the estimates move as the lines grow
    svc.store.close()


def test_garbage_on_a_device_topic_never_stalls_or_reorders_its_good_commands(site_config, tmp_path, site_clock):
    """Invalid commands that name an id take their place in the sequence but never move it
    back (seq 0 once restarted the device's sequence, and its next command waited 15 s for
    a gap); one held past a gap whose place a new sequence took is applied, not left behind."""
    from qms.service.app import CentralService
    svc = CentralService(load_config(site_config), tmp_path / "svc.sqlite", clock=site_clock)
    k = lambda seq: _cmd("kiosk-1", "kiosk", seq, "ticket.request", service="chung-thuc")  # noqa: E731
    svc.process([k(1), k(2)])
    bad = lambda seq, n: (k(seq)[0], json.dumps({"v": 1, "id": f"junk-{n:06d}", "dev": "kiosk-1", "seq": seq,  # noqa: E731
                                                  "ts": 1, "type": "ticket.request", "level": 9}).encode(), None)
    svc.process([bad(0, 1)])                          # answered `invalid`, sequence kept
    svc.process([k(3)])
    assert len(svc.core.tickets) == 3 and svc.stats["held"] == 0
    svc.process([bad(7, 2)])                          # past a gap: held
    assert svc.stats["held"] == 1
    svc.process([k(4), k(5), k(6)])                   # the good ones fill up to it...
    assert len(svc.core.tickets) == 6
    svc.process([k(7), k(8)])                         # ...it was applied (refused) at 7; 7 again is a reset
    assert len(svc.core.tickets) == 8 and not svc._held
    svc.store.close()
