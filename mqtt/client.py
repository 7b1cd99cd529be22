"""`MqttLink`: the one way our processes talk to the broker.

paho-mqtt 2.x with MQTT 5. It boots without a broker (connect_async), reconnects with
jittered back-off (thousands of devices must not reconnect in lock-step), guards every
callback (an exception escaping a paho callback kills its network thread for good),
re-subscribes on every connect (and reports itself connected only once the broker has
confirmed the subscriptions: a clean session starts without them), and hands incoming
messages to the caller, who should only queue them: the work happens on the caller's
main loop, not on paho's thread. A
process that does its work per message (the central service) runs the network loop on
its own thread instead (`start(own_thread=False)`, `poll()`; mqtt/loop.py).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from qms.config.site import Mqtt
from qms.mqtt.loop import BufferedSocket, CallerLoop, PublishSink, take_publishes

log = logging.getLogger("qms.mqtt")

OnMessage = Callable[[str, bytes, object], None]   # topic, payload, properties


def _guard(fn):
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except Exception:   # noqa: BLE001 - see module docstring
            log.exception("error in MQTT callback %s (ignored, link stays up)", fn.__name__)
    wrapper.__name__ = fn.__name__
    return wrapper


def read_password(cfg: Mqtt, base: Path | None = None) -> str | None:
    # a second device on one machine (`qms web` beside the service) shares the site config
    # but not the password: its unit's env file names its own (docs/deploy.md)
    own = os.environ.get("QMS_MQTT_PASSWORD_FILE")
    if own:
        return Path(own).read_text(encoding="utf-8").strip()
    if cfg.password is not None:
        return cfg.password
    if cfg.password_file:
        p = Path(cfg.password_file)
        if not p.is_absolute() and base is not None:
            p = base / p
        return p.read_text(encoding="utf-8").strip()
    return None


class MqttLink:
    def __init__(self, cfg: Mqtt, client_id: str, *, subscriptions: Iterable[tuple[str, int]] = (),
                 on_message: OnMessage | None = None, status_topic: str | None = None,
                 status: dict | None = None, config_dir: Path | None = None,
                 on_connect: Callable[[], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 max_inflight: int = 100, report_refusals: bool = True):
        self.cfg = cfg
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.on_message = on_message
        self.status_topic = status_topic
        self._status = dict(status or {})
        self._user_on_connect = on_connect
        self._user_on_disconnect = on_disconnect
        self.connected = threading.Event()
        self.stats = {"connects": 0, "disconnects": 0, "refused_publishes": 0}
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        c.username_pw_set(cfg.username or client_id, read_password(cfg, config_dir))
        if cfg.tls_ca:
            c.tls_set(ca_certs=cfg.tls_ca, certfile=cfg.tls_cert, keyfile=cfg.tls_key)
        # jitter: each device picks its own ceiling between 8 and 16 s
        self._max_delay = 8 + int(random.random() * 8)
        c.reconnect_delay_set(min_delay=1, max_delay=self._max_delay)
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)
        if status_topic:
            c.will_set(status_topic, json.dumps({"v": 1, "dev": client_id, "online": False}), qos=1,
                       retain=True)
        c.on_connect = _guard(self._on_connect)
        c.on_disconnect = _guard(self._on_disconnect)
        c.on_message = _guard(self._on_message)
        c.on_subscribe = _guard(self._on_subscribe)
        self._suback_mid: int | None = None
        if report_refusals:
            # paho builds a reason code and properties for *every* QoS 0 publish just to
            # call this; a publisher of many QoS 0 messages (the service) can opt out
            c.on_publish = _guard(self._on_publish)
        c.on_socket_open = _guard(self._on_socket_open)
        self.client = c
        self.refused: Callable[[int, int], None] | None = None   # mid, reason code
        self._stopping = False
        self.loop: CallerLoop | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self, own_thread: bool = True) -> MqttLink:
        """Connect in the background. With own_thread=False the caller runs the network
        loop with `poll()` on its own thread, and publishes only from that thread."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive,
                                  clean_start=True)
        if own_thread:
            self.client.loop_start()
        else:
            self.loop = CallerLoop(self.client, max_delay=self._max_delay)
        return self

    def poll(self, timeout: float) -> None:
        """One turn of the caller-run network loop (see `start` and `CallerLoop.poll`)."""
        self.loop.poll(timeout)

    def take_publishes(self, sink: PublishSink) -> bool:
        """Incoming messages go to `sink(topic, payload, properties, retain)`, read from the
        packet without paho's per-message objects (mqtt/loop.py `take_publishes`: why);
        `on_message` is then not called. For a process that reads many messages. False: this
        paho lacks what the lean path needs, and its own path feeds `sink`."""
        if take_publishes(self.client, sink):
            return True
        self.client.on_message = lambda c, u, msg: sink(msg.topic, msg.payload, msg.properties, msg.retain)
        return False

    def burst(self):
        """A context in which publishes leave together (caller-run loop; else a no-op)."""
        return self.loop.burst() if self.loop is not None else contextlib.nullcontext()

    def stop(self) -> None:
        if self.status_topic and self.connected.is_set():
            self._status["online"] = False
            info = self.publish(self.status_topic, self._status_payload(), retain=True)
            try:
                if info is not None:
                    self._wait_published(info, 1.0)
            except (RuntimeError, ValueError):
                pass
        self._stopping = True
        self.client.disconnect()
        if self.loop is not None:
            self.loop.close()
        else:
            self.client.loop_stop()
        self.connected.clear()

    def _wait_published(self, info, timeout: float) -> None:
        if self.loop is None:
            info.wait_for_publish(timeout)
            return
        deadline = time.monotonic() + timeout       # nobody else runs our loop now
        while not info.is_published() and time.monotonic() < deadline and self.client.socket():
            self.poll(0.05)

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    # ------------------------------------------------------------ publishing
    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                response_topic: str | None = None, correlation: bytes | None = None):
        props = None
        if response_topic or correlation:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation:
                props.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            log.warning("publish to %s not queued: %s", topic, paho.error_string(info.rc))
            return None
        return info

    def publish_many(self, messages: Iterable[tuple[str, bytes, int, bool, bytes | None]]) -> None:
        """Publish (topic, payload, qos, retain, correlation) in order, as one burst."""
        with self.burst():
            for topic, payload, qos, retain, corr in messages:
                self.publish(topic, payload, qos=qos, retain=retain, correlation=corr)

    def set_status(self, **fields) -> None:
        """Update this device's retained status (merged with what was set before)."""
        self._status.update(fields)
        if self.status_topic and self.connected.is_set():
            self.publish(self.status_topic, self._status_payload(), retain=True)

    def _status_payload(self) -> bytes:
        return json.dumps({"v": 1, "dev": self.client_id, "ts": int(time.time() * 1000),
                           **self._status}, ensure_ascii=False).encode()

    # ------------------------------------------------------------ paho callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the connection: %s", self.cfg.host, self.cfg.port,
                        reason_code)
            return
        self.stats["connects"] += 1
        if self.loop is not None:
            self.loop.connected()
        # a clean session has no subscriptions: "connected" waits for the broker's SUBACK,
        # so nothing published to us right after counts on a subscription not yet there
        self._suback_mid = None
        if self.subscriptions:
            rc, self._suback_mid = client.subscribe(list(self.subscriptions))
            if rc != paho.MQTT_ERR_SUCCESS:
                log.warning("subscribe not sent: %s", paho.error_string(rc))
                self._suback_mid = None
        if self._suback_mid is None:
            self.connected.set()
        if self.status_topic:
            self._status["online"] = True
            self.publish(self.status_topic, self._status_payload(), retain=True)
        log.info("connected to %s:%s as %s", self.cfg.host, self.cfg.port, self.client_id)
        if self._user_on_connect:
            self._user_on_connect()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid != self._suback_mid:
            return
        for (topic, _), rc in zip(self.subscriptions, reason_codes):
            if rc.is_failure:
                log.error("broker refused the subscription to %s: %s", topic, rc)
        self.connected.set()

    def _on_socket_open(self, client, userdata, sock):
        # small messages must not wait for Nagle + delayed ACK (~40 ms per hop)
        if hasattr(sock, "setsockopt"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.loop is not None and getattr(client, "_sock", None) is sock:
            # our own loop reads in bulk (paho has no setting for it: its socket attribute
            # is swapped here, where paho has just made it, before it reads anything)
            client._sock = BufferedSocket(sock)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._stopping:
            self.stats["disconnects"] += 1
            log.warning("lost the broker (%s); reconnecting", reason_code)
        if self._user_on_disconnect:
            self._user_on_disconnect()

    def _on_message(self, client, userdata, msg):
        if self.on_message:
            self.on_message(msg.topic, msg.payload, msg.properties)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        # under MQTT 5 a publish refused by the ACL still completes: the code says so
        if reason_code.value >= 128:
            self.stats["refused_publishes"] += 1
            log.error("broker refused publish %s: %s", mid, reason_code)
            if self.refused:
                self.refused(mid, reason_code.value)
