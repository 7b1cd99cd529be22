"""The caller-run MQTT loop (mqtt/loop.py) against a real Mosquitto: bulk reads keep every
message and its order, bursts arrive whole, a broker that comes late or restarts is
reconnected with the subscriptions back, and a wake-up from another thread ends a wait."""
from __future__ import annotations

import threading
import time

from support.mqtt import Recorder
from support.wait import wait_until

from qms.config.site import Mqtt
from qms.mqtt.client import MqttLink
from qms.mqtt.loop import BufferedSocket


def _caller_link(port: int, got: list, client_id: str = "caller") -> MqttLink:
    link = MqttLink(Mqtt(port=port), client_id, subscriptions=[("t/#", 1)],
                    on_message=lambda topic, payload, props: got.append(payload),
                    report_refusals=False)
    return link.start(own_thread=False)


def _pump(link: MqttLink, until, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        link.poll(0.05)
        if until():
            return True
    return False


def test_bulk_reads_keep_every_message_in_order(broker):
    got: list[bytes] = []
    link = _caller_link(broker.port, got)
    sender = MqttLink(Mqtt(port=broker.port), "sender").start()
    try:
        assert _pump(link, link.connected.is_set)
        assert isinstance(link.client.socket(), BufferedSocket)
        assert sender.wait_connected(5)
        sizes = [1, 200, 5000, 70_000]                   # some span several reads of the socket
        sent = [(b"%05d:" % i) + b"x" * sizes[i % len(sizes)] for i in range(2000)]
        for p in sent:
            sender.publish("t/x", p, qos=1)
        assert _pump(link, lambda: len(got) >= len(sent), 30), f"{len(got)} of {len(sent)}"
        assert got == sent
    finally:
        sender.stop()
        link.stop()


def test_connected_means_subscribed(broker):
    """A clean session starts without subscriptions: the link reports itself connected only
    once the broker confirmed them, so a message sent to it at that moment is not lost
    (the service's readiness, and every device's `wait_connected`, rest on this)."""
    got: list[bytes] = []
    link = _caller_link(broker.port, got)
    sender = MqttLink(Mqtt(port=broker.port), "sender").start()
    try:
        assert sender.wait_connected(5)
        assert _pump(link, lambda: link.stats["connects"] == 1)
        # the poll that read the CONNACK sent the SUBSCRIBE; the SUBACK comes in a later one
        assert not link.connected.is_set()
        assert _pump(link, link.connected.is_set)
        sender.publish("t/first", b"right away", qos=1).wait_for_publish(5)
        assert _pump(link, lambda: got == [b"right away"])
    finally:
        sender.stop()
        link.stop()


def test_a_burst_arrives_whole_and_in_order(broker):
    rec = Recorder(broker.port, "b/#")
    got: list[bytes] = []
    link = _caller_link(broker.port, got)
    try:
        assert _pump(link, link.connected.is_set)
        with link.burst():                               # corked: one write for all of them
            for i in range(300):
                link.publish(f"b/{i % 2}", b"%d" % i, qos=i % 2)
        # QoS 1 past the broker's receive maximum (20) leaves as PUBACKs come back: keep the
        # loop going. Order holds per topic (one QoS per topic, as in the protocol).
        assert _pump(link, lambda: len(rec.messages) >= 300), f"{len(rec.messages)} of 300"
        for q in (0, 1):
            assert [p for t, p, _ in rec.messages if t == f"b/{q}"] == [b"%d" % i for i in range(q, 300, 2)]
    finally:
        rec.close()
        link.stop()


def test_late_and_restarted_broker_is_reconnected_with_subscriptions(broker):
    broker.stop()
    got: list[bytes] = []
    link = _caller_link(broker.port, got)
    try:
        for _ in range(10):                              # no broker: polls wait, nothing breaks
            link.poll(0.05)
        assert not link.connected.is_set()
        broker.start()
        assert _pump(link, link.connected.is_set, 15), "never connected once the broker came"
        broker.restart()
        assert _pump(link, lambda: not link.connected.is_set(), 10)
        assert _pump(link, link.connected.is_set, 30), "never reconnected after a restart"
        sender = MqttLink(Mqtt(port=broker.port), "sender").start()
        try:
            assert sender.wait_connected(5)     # (link.connected means its SUBACK came back)
            sender.publish("t/again", b"after restart", qos=1)
            assert _pump(link, lambda: b"after restart" in got), "subscriptions not restored"
            assert link.stats["connects"] == 2
        finally:
            sender.stop()
    finally:
        link.stop()


def test_wake_ends_a_wait_from_another_thread(broker):
    got: list[bytes] = []
    link = _caller_link(broker.port, got)
    try:
        assert _pump(link, link.connected.is_set)
        timer = threading.Timer(0.2, link.loop.wake)
        timer.start()
        t = time.monotonic()
        link.poll(30.0)
        assert time.monotonic() - t < 10, "a wake-up did not end the wait"
        timer.join()
    finally:
        link.stop()


def test_stop_delivers_the_offline_status(broker):
    rec = Recorder(broker.port, "status/#")
    link = MqttLink(Mqtt(port=broker.port), "svc", status_topic="status/svc", status={"role": "service"})
    link.start(own_thread=False)
    assert _pump(link, link.connected.is_set)
    assert _pump(link, lambda: rec.json("status/svc") and rec.json("status/svc")[-1]["online"])
    link.stop()
    assert wait_until(lambda: rec.json("status/svc")[-1]["online"] is False, 5)
    rec.close()


def test_packets_left_in_the_read_buffer_are_handled_without_new_traffic(broker):
    """One read can bring hundreds of small packets, more than a poll turn handles; the
    rest must be handled by the next turns even if nothing else arrives."""
    got: list[bytes] = []
    link = _caller_link(broker.port, got)
    sender = MqttLink(Mqtt(port=broker.port), "sender").start()
    try:
        assert _pump(link, link.connected.is_set)
        assert sender.wait_connected(5)
        for i in range(1500):
            sender.publish("t/s", b"%d" % i, qos=0)
        time.sleep(1.0)                       # all of it waits in our socket before we read
        assert _pump(link, lambda: len(got) >= 1500, 5), f"{len(got)} of 1500"
        assert got == [b"%d" % i for i in range(1500)]
    finally:
        sender.stop()
        link.stop()


def test_lean_publishes_agree_with_paho(broker):
    """`take_publishes` reads PUBLISH packets itself (paho's objects cost ~100 µs a message):
    a lean link and paho's own path receive the same topics, payloads, retain flags and
    properties, for QoS 0, 1 (past the broker's 20 in flight: PUBACKs go back) and 2."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions

    def lean_link(client_id: str, got: list) -> MqttLink:
        link = MqttLink(Mqtt(port=broker.port), client_id,
                        subscriptions=[("t/#", SubscribeOptions(qos=2, retainAsPublished=True))],
                        report_refusals=False)
        assert link.take_publishes(lambda topic, payload, props, retain: got.append(
            (topic, payload, retain, getattr(props, "CorrelationData", None),
             getattr(props, "ResponseTopic", None), getattr(props, "UserProperty", None))))
        return link.start(own_thread=False)

    plain: list = []
    lean: list = []
    link = lean_link("lean", lean)
    ref = MqttLink(Mqtt(port=broker.port), "plain",
                   subscriptions=[("t/#", SubscribeOptions(qos=2, retainAsPublished=True))],
                   on_message=lambda topic, payload, props: None)
    ref.client.on_message = lambda c, u, msg: plain.append(
        (msg.topic, msg.payload, msg.retain, getattr(msg.properties, "CorrelationData", None),
         getattr(msg.properties, "ResponseTopic", None), getattr(msg.properties, "UserProperty", None)))
    ref.start()
    sender = MqttLink(Mqtt(port=broker.port), "sender").start()
    try:
        assert _pump(link, link.connected.is_set)
        assert ref.wait_connected(5) and sender.wait_connected(5)
        n = 0
        for i in range(120):
            props = None
            if i % 3 == 1:
                props = Properties(PacketTypes.PUBLISH)
                props.CorrelationData = b"id-%d" % i
                props.ResponseTopic = "ack/x"
            if i % 10 == 7:
                props = props or Properties(PacketTypes.PUBLISH)
                props.UserProperty = ("k", f"v{i}")
            payload = [b"", b"{}", "số".encode() * i, b"x" * 70_000][i % 4]
            topic = ["t/a", "t/hộ-tịch", "t/a/b/c"][i % 3]
            info = sender.client.publish(topic, payload, qos=i % 3, retain=i % 5 == 0, properties=props)
            if i % 3:                     # within the broker's receive maximum (20 in flight)
                link.poll(0.0)
                info.wait_for_publish(5)
            n += 1
        assert _pump(link, lambda: len(lean) >= n and len(plain) >= n, 30), f"{len(lean)}, {len(plain)} of {n}"
        for q in (0, 1, 2):       # order holds per QoS (paho's QoS 2 delivery waits for PUBREL)
            mine = [m for m in lean if m[0] == ["t/a", "t/hộ-tịch", "t/a/b/c"][q]]
            theirs = [m for m in plain if m[0] == mine[0][0]]
            assert mine == theirs
        assert sorted(map(repr, lean)) == sorted(map(repr, plain))
        assert all(type(m[1]) is bytes for m in lean)
    finally:
        sender.stop()
        ref.stop()
        link.stop()


def test_a_local_broker_whose_free_port_was_taken_meanwhile_moves(tmp_path, monkeypatch):
    """`LocalBroker` picks a free port, then starts Mosquitto on it; on a shared machine
    another process's broker may take it in between. Something then answers on the port,
    but not ours (it exits: address in use): start() must not report that as started."""
    import socket

    from qms.mqtt import broker as broker_mod
    from qms.mqtt.broker import LocalBroker
    other = LocalBroker(tmp_path / "other").start()
    real = broker_mod.free_port
    taken = iter([other.port])
    monkeypatch.setattr(broker_mod, "free_port", lambda: next(taken, None) or real())
    ours = LocalBroker(tmp_path / "ours")
    try:
        assert ours.port == other.port
        ours.start()
        assert ours.port != other.port and ours.proc.poll() is None
        with socket.create_connection(("127.0.0.1", ours.port), timeout=2):
            pass
        assert other.proc.poll() is None
    finally:
        ours.stop()
        other.stop()
