"""`CommandChannel`: a device's commands, sent in order until the service acknowledges them.

Every command goes into the durable outbox first. A sender thread publishes the unacked
ones in sequence order (a window of them in flight), with the device's ack topic as the
MQTT 5 response topic and the message id as correlation data. An unacked command is
re-sent after `resend_after` seconds and at once after a reconnect; the service
deduplicates by id, so a command takes effect exactly once. `request()` also waits for
the answer, for a kiosk that must know its ticket number now.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import msgspec

from qms.mqtt.client import MqttLink
from qms.mqtt.outbox import Outbox
from qms.protocol.messages import Ack, decode_ack
from qms.protocol.topics import Topics

log = logging.getLogger("qms.channel")


class CommandChannel:
    def __init__(self, link: MqttLink, outbox: Outbox, topics: Topics, role: str, *,
                 window: int = 64, resend_after: float = 3.0,
                 on_ack: Callable[[dict, Ack], None] | None = None):
        self.link, self.outbox, self.topics, self.role = link, outbox, topics, role
        self.device = outbox.device
        self.cmd_topic = topics.command(role, self.device)
        self.ack_topic = topics.ack(self.device)
        self.window = window
        self.resend_after = resend_after
        self.on_ack = on_ack
        self._sent: dict[str, float] = {}          # id -> monotonic time of last send
        self._waiters: dict[str, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"sent": 0, "resent": 0, "acked": 0, "invalid_acks": 0}
        link.subscriptions.append((self.ack_topic, 1))
        prev_on_message = link.on_message
        prev_on_connect = link._user_on_connect

        def on_message(topic, payload, props):
            if topic == self.ack_topic:
                self._on_ack(payload)
            elif prev_on_message:
                prev_on_message(topic, payload, props)

        def on_connect():
            with self._lock:
                self._sent.clear()              # re-send everything unacked at once
            self._kick.set()
            if prev_on_connect:
                prev_on_connect()

        link.on_message = on_message
        link._user_on_connect = on_connect

    # ------------------------------------------------------------ API
    def start(self) -> CommandChannel:
        self._thread = threading.Thread(target=self._run, name=f"channel-{self.device}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread:
            self._thread.join(2)

    def send(self, type_: str, extra=None, msg_id: str | None = None, **fields) -> dict:
        """Store the command durably and schedule it. Returns the full message."""
        msg = self.outbox.add(self.cmd_topic, type_, fields, extra=extra, msg_id=msg_id)
        self._kick.set()
        return msg

    def request(self, type_: str, timeout: float, extra=None, **fields) -> tuple[dict, Ack | None]:
        """Send and wait up to `timeout` s for the service's answer (None on timeout;
        the command stays in the outbox and will still take effect)."""
        ev, box = threading.Event(), []
        msg = self.outbox.add(self.cmd_topic, type_, fields, extra=extra)
        with self._lock:
            self._waiters[msg["id"]] = (ev, box)
        self._kick.set()
        ev.wait(timeout)
        with self._lock:
            self._waiters.pop(msg["id"], None)
        return msg, (box[0] if box else None)

    def pending(self) -> int:
        return self.outbox.count()

    # ------------------------------------------------------------ internals
    def _on_ack(self, payload: bytes) -> None:
        try:
            ack = decode_ack(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.stats["invalid_acks"] += 1
            log.warning("ignoring malformed ack: %s", e)
            return
        removed = self.outbox.ack(ack.id)
        with self._lock:
            self._sent.pop(ack.id, None)
            waiter = self._waiters.pop(ack.id, None)
        if removed:
            self.stats["acked"] += 1
        if waiter:
            waiter[1].append(ack)
            waiter[0].set()
        if self.on_ack and removed:
            try:
                self.on_ack({"id": ack.id}, ack)
            except Exception:   # noqa: BLE001 - a bad handler must not stop acks
                log.exception("on_ack handler failed")
        self._kick.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(0.5)
            self._kick.clear()
            try:
                self._pump()
            except Exception:   # noqa: BLE001 - keep sending whatever happens
                log.exception("command channel pump failed; retrying")
                time.sleep(0.5)

    def _pump(self) -> None:
        if not self.link.connected.is_set():
            return
        now = time.monotonic()
        for _seq, msg_id, topic, payload in self.outbox.pending(self.window):
            with self._lock:
                last = self._sent.get(msg_id)
                if last is not None and now - last < self.resend_after:
                    continue
                self._sent[msg_id] = now
            self.stats["resent" if last is not None else "sent"] += 1
            self.link.publish(topic, payload, qos=1, response_topic=self.ack_topic,
                              correlation=msg_id.encode())
