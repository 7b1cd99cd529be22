"""`CallerLoop`: paho's network loop run by its owner's thread instead of paho's own.

For a process whose main loop does the work on every message (the central service), a
network thread only adds cost: each message crosses threads (a queue, a wake-up, a GIL
hand-over) and paho's thread writes every outgoing packet with its own `send`. Here the
owner calls `poll()`; incoming messages reach `on_message` on the owner's thread, and a
burst of publishes leaves in as few TCP segments as the kernel can make of it
(`TCP_CORK` while the burst is written).

This is paho's documented external-loop interface (`socket`, `want_write`, `loop_read`,
`loop_write`, `loop_misc`, `reconnect`). paho is not safe for publishing from two threads
without its own loop thread (two writers could interleave a partial packet), so in this
mode only the owner's thread may publish; other threads hand work back and call `wake()`.

`take_publishes` is the one place that reaches into paho's private parts (besides the
socket swap of `BufferedSocket`): paho turns each incoming PUBLISH into a `Properties`
object (which rebuilds two dictionaries of every MQTT 5 property name, even when the
packet has none), an `MQTTMessage`, a debug-log call and a topic-filter match: ~120 µs
of Python per message, measured, against ~20 µs for the same packets read here. For a
process that must stay fast while a broken device floods it (the service: bench/README.md,
"garbage") that was most of its CPU. Only QoS 0/1 packets go the lean way; QoS 2, a
manual-ack client, a topic alias (empty topic) or anything that does not parse go to
paho's own code, and tests/test_mqtt_loop.py checks the two agree packet by packet.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import socket
import time
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger("qms.mqtt")

_CORK = getattr(socket, "TCP_CORK", None)      # Linux; elsewhere bursts go out as they are


class CallerLoop:
    def __init__(self, client: paho.Client, min_delay: float = 1.0, max_delay: float = 16.0):
        self.client = client
        self.min_delay, self.max_delay = min_delay, max_delay
        self._delay = 0.0               # before the first attempt: none
        self._next_attempt = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._corked = False

    def wake(self) -> None:
        """Make a `poll()` in progress (or the next one) return at once; any thread."""
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:         # already full of wake-ups: the loop will notice
            pass

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` for traffic or a wake-up; read, write, keep the link alive.
        What this turn writes (the PUBACKs of what it read) leaves as one burst."""
        c = self.client
        sock = c.socket()
        if sock is None:
            self._try_connect(timeout)
            return
        wlist = [sock] if c.want_write() else []
        if _buffered(sock):             # read from the kernel already: don't wait for more
            timeout = 0.0
        try:
            readable, _, _ = select.select([sock, self._wake_r], wlist, [], timeout)
        except (OSError, ValueError):   # the socket was closed under us: reconnect next turn
            return
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
        with self.burst():
            if (sock in readable or _buffered(sock)) and c.loop_read() == paho.MQTT_ERR_SUCCESS:
                # paho reads only a few packets per call: drain what has arrived
                for _ in range(256):
                    if not _pending(c.socket()) or c.loop_read() != paho.MQTT_ERR_SUCCESS:
                        break
            if c.socket() is not None and c.want_write():
                c.loop_write()
        if c.socket() is not None:
            c.loop_misc()

    @contextlib.contextmanager
    def burst(self):
        """Publishes inside leave together: the socket is corked until the end."""
        sock = self.client.socket()
        if _CORK is None or sock is None or self._corked:
            yield
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
        except OSError:
            yield
            return
        self._corked = True
        try:
            yield
        finally:
            self._corked = False
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _CORK, 0)

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _try_connect(self, timeout: float) -> None:
        now = time.monotonic()
        if now < self._next_attempt:
            wait = min(timeout, self._next_attempt - now)
            with contextlib.suppress(OSError, ValueError):
                if select.select([self._wake_r], [], [], wait)[0]:
                    os.read(self._wake_r, 4096)
            return
        # jittered back-off; it restarts only once the broker accepted us (`connected`), so
        # a broker that takes the TCP connection and then refuses is not hammered either
        self._delay = min(self.max_delay, max(self.min_delay, self._delay * 2))
        self._next_attempt = now + self._delay * (0.5 + random.random() / 2)
        try:
            self.client.reconnect()
        except (OSError, ValueError) as e:
            log.debug("broker not reachable (%s); next try in %.1f s", e, self._next_attempt - now)

    def connected(self) -> None:
        """The broker accepted the connection: the next reconnect may come at once."""
        self._delay = 0.0


PublishSink = Callable[[str, bytes, "Properties | None", bool], None]   # topic, payload, props, retain


def take_publishes(client: paho.Client, sink: PublishSink) -> bool:
    """Hand every incoming QoS 0/1 PUBLISH to `sink(topic, payload, properties, retain)`
    straight from the packet, without paho's per-message objects (module docstring: why).
    `properties` is None when the packet has none. PUBACKs are sent as paho sends them.
    Returns False (and changes nothing) on a paho without the parts this relies on."""
    fallback = getattr(client, "_handle_publish", None)
    if fallback is None or not hasattr(client, "_in_packet") or not hasattr(client, "_send_puback"):
        log.warning("paho %s: no lean PUBLISH path, using paho's own", getattr(paho, "__version__", "?"))
        return False

    def on_publish(message) -> None:          # paho's path (the fallback): the same sink
        sink(message.topic, message.payload, message.properties, message.retain)

    def handle_publish() -> int:
        header, packet = client._in_packet["command"], client._in_packet["packet"]
        qos = (header >> 1) & 3
        try:
            if qos == 2 or client._manual_ack:
                raise ValueError
            slen = (packet[0] << 8) | packet[1]
            pos = 2 + slen
            if slen == 0:                       # a topic alias: paho's business
                raise ValueError
            topic = packet[2:pos].decode()
            mid = 0
            if qos:
                mid = (packet[pos] << 8) | packet[pos + 1]
                pos += 2
            if packet[pos] == 0:                # no properties: the usual case
                props, pos = None, pos + 1
            else:                               # their length, a variable byte integer
                length, mult, end = 0, 1, pos
                while True:
                    b = packet[end]
                    length += (b & 127) * mult
                    mult, end = mult * 128, end + 1
                    if not b & 128 or end - pos >= 4:
                        break
                end += length
                if end > len(packet):
                    raise ValueError
                props = Properties(PacketTypes.PUBLISH)
                props.unpack(bytes(packet[pos:end]))   # bytes, as paho gives them
                pos = end
        except (ValueError, IndexError):        # UnicodeDecodeError is a ValueError
            return fallback()
        sink(topic, bytes(packet[pos:]), props, bool(header & 1))
        return client._send_puback(mid) if qos == 1 else paho.MQTT_ERR_SUCCESS

    client._handle_publish = handle_publish
    client.on_message = lambda c, u, message: on_publish(message)
    return True


def _pending(sock) -> bool:
    """Bytes of a packet already read from the kernel (BufferedSocket, TLS) or waiting in it."""
    if sock is None:
        return False
    if _buffered(sock):
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _buffered(sock) -> int:
    pending = getattr(sock, "pending", None)
    return pending() if pending else 0


class BufferedSocket:
    """paho reads a packet with one `recv` for its first byte, one per length byte and one
    for the rest: three system calls or more per packet. This reads what the kernel has
    in one call and serves paho's small reads from memory; `pending()` (which paho
    already asks of TLS sockets) tells its loop that buffered bytes are left."""

    def __init__(self, sock):
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            self._buf, self._pos = self._sock.recv(max(n, 65536)), 0   # raises BlockingIOError
            if not self._buf:
                return b""                  # closed by the broker
        out = self._buf[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner else 0)

    def send(self, data, *flags) -> int:      # the hot ones, without __getattr__
        return self._sock.send(data, *flags)

    def fileno(self) -> int:
        return self._sock.fileno()

    def setsockopt(self, *args) -> None:
        self._sock.setsockopt(*args)

    def __getattr__(self, name):
        return getattr(self._sock, name)
