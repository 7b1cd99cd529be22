"""A foreign device for protocol tests: plain paho and hand-written JSON, no import of the
project's client (what a third party writing from docs/protocol.md would do)."""
from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

SITE = "phuong-an-khanh"


class RawDevice:
    """Publishes commands of one device on cmd/<role>/<dev> and keeps every ack by id."""

    def __init__(self, port: int, dev: str, role: str, *extra_topics: str):
        self.dev, self.role, self.port = dev, role, port
        self.topic = f"qms/v1/{SITE}/cmd/{role}/{dev}"
        self.acks: dict[str, list[dict]] = {}
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.seq = 0
        subscribed = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{dev}-{time.monotonic_ns()}",
                        protocol=paho.MQTTv5)
        topics = [f"qms/v1/{SITE}/ack/{dev}", *extra_topics]

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe([(t, 1) for t in topics])

        def on_message(client, userdata, msg):
            with self.lock:
                self.messages.append((msg.topic, msg.payload, msg.retain))
                if msg.topic.endswith(f"/ack/{dev}"):
                    ack = json.loads(msg.payload)
                    self.acks.setdefault(ack["id"], []).append(ack)

        c.on_connect, c.on_message = on_connect, on_message
        c.on_subscribe = lambda *a: subscribed.set()
        c.connect("127.0.0.1", port)
        c.loop_start()
        assert subscribed.wait(10), "no SUBACK"
        self.client = c

    def body(self, type_: str, seq: int | None = None, msg_id: str | None = None, **fields) -> dict:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return {"v": 1, "id": msg_id or f"{self.dev}-{time.monotonic_ns()}", "dev": self.dev, "seq": seq,
                "ts": int(time.time() * 1000), "type": type_, **fields}

    def send(self, body: dict | bytes, retain: bool = False, topic: str | None = None) -> str | None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.publish(topic or self.topic, payload, qos=1, retain=retain).wait_for_publish(10)
        return None if isinstance(body, bytes) else body["id"]

    def ack(self, msg_id: str, timeout: float = 5.0) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if msg_id in self.acks:
                    return self.acks[msg_id][0]
            time.sleep(0.01)
        return None

    def latest(self, topic: str) -> dict | None:
        with self.lock:
            for t, p, _ in reversed(self.messages):
                if t == topic:
                    return json.loads(p) if p else None
        return None

    def wait_for(self, pred, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)
        return pred()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_on(port: int, topic: str, timeout: float = 10.0) -> list[bytes]:
    """Every retained message the broker holds on `topic` (a barrier, not a sleep: the
    retained messages come right after the SUBACK, before a marker published after it)."""
    got: list[bytes] = []
    marker = f"qms/v1/{SITE}/test-marker/{time.monotonic_ns()}"
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"ret-{time.monotonic_ns()}", protocol=paho.MQTTv5)

    def on_message(client, userdata, msg):
        if msg.topic == marker:
            done.set()
        elif msg.retain and msg.payload:
            got.append(msg.payload)

    c.on_message = on_message
    c.on_connect = lambda client, *a: client.subscribe([(topic, 1), (marker, 1)])
    c.on_subscribe = lambda client, *a: client.publish(marker, b"x", qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert done.wait(timeout), "marker never came back"
        return got
    finally:
        c.disconnect()
        c.loop_stop()
