"""Test helpers: a plain paho client that records what it receives."""
from __future__ import annotations

import json
import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from support.wait import wait_until


class Recorder:
    """Subscribes to topics on a broker and keeps every message (topic, payload)."""

    def __init__(self, port: int, *topics: str, client_id: str = "recorder"):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe([(t, 1) for t in topics])

        def on_subscribe(client, userdata, mid, reason_codes, props):
            self.connected.set()          # subscribed: nothing published from now on is missed

        def on_message(client, userdata, msg):
            with self.lock:
                self.messages.append((msg.topic, msg.payload, msg.retain))

        c.on_connect, c.on_message, c.on_subscribe = on_connect, on_message, on_subscribe
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        assert self.connected.wait(5)

    def json(self, topic_prefix: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.startswith(topic_prefix) and p]

    def latest(self, topic: str) -> dict | None:
        with self.lock:
            for t, p, _ in reversed(self.messages):
                if t == topic:
                    return json.loads(p) if p else None
        return None

    def wait_for(self, pred, timeout: float = 10.0, what: str = "the messages"):
        return wait_until(pred, timeout, what=what)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raw_client(port: int, client_id: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def issue(kiosk, service_id: str = "chung-thuc", n: int = 1, timeout: float = 10) -> list[int]:
    """Take `n` tickets through a real kiosk Device; their numbers."""
    numbers = []
    for _ in range(n):
        _, ack = kiosk.request("ticket.request", timeout, service=service_id)
        assert ack is not None and ack.ok, ack
        numbers.append(ack.result["ticket"]["number"])
    return numbers
